// +k8s:deepcopy-gen=package

// Package config holds the internal types of the workbench plugins' args. They are registered in
// kube-scheduler's configuration scheme, so `pluginConfig` entries decode strictly and default.
package config
