// Package version holds the workbench-scheduler build identity, set by the Makefile's ldflags.
package version

import (
	"fmt"

	kubeversion "k8s.io/component-base/version"
)

// Set with -ldflags "-X github.com/workbench-scheduler/workbench-scheduler/pkg/version.Version=...".
var (
	Version   = "v0.1.0-dev"
	GitCommit = "unknown"
)

// String is what `workbench-scheduler --version` prints.
func String() string {
	return fmt.Sprintf("workbench-scheduler %s (commit %s, kube-scheduler %s)", Version, GitCommit, kubeversion.Get().GitVersion)
}
