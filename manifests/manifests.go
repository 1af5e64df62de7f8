// Package manifests embeds the files that the Go code and the shipped manifests must share, so
// that the sandbox and tests run exactly what an operator deploys.
package manifests

import _ "embed"

// SchedulerConfig is the KubeSchedulerConfiguration the ConfigMap ships.
//
//go:embed scheduler-config.yaml
var SchedulerConfig []byte
