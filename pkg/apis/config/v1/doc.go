// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config
// +k8s:defaulter-gen=TypeMeta
// +groupName=kubescheduler.config.k8s.io

// Package v1 holds the versioned (kubescheduler.config.k8s.io/v1) args of the workbench plugins.
package v1
