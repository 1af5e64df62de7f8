// Package scheme adds the workbench plugins' args to kube-scheduler's configuration scheme.
// Importing it is enough: the scheduler then decodes, defaults and converts them like its own.
package scheme

import (
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

// Scheme is kube-scheduler's own scheme, with our args added.
var Scheme = kubeschedulerscheme.Scheme

func init() {
	utilruntime.Must(config.AddToScheme(Scheme))
	utilruntime.Must(configv1.AddToScheme(Scheme))
}
