// Package manifests embeds the files that the Go code and the shipped manifests must share, so
// that the sandbox and tests run exactly what an operator deploys.
package manifests

import (
	"embed"
	_ "embed"
)

// SchedulerConfig is the KubeSchedulerConfiguration the ConfigMap ships.
//
//go:embed scheduler-config.yaml
var SchedulerConfig []byte

// CRDs holds the CustomResourceDefinitions of workbench-scheduler's own APIs, one per file
// under crds/, as `make generate` writes them from pkg/apis.
//
//go:embed crds/*.yaml
var CRDs embed.FS
