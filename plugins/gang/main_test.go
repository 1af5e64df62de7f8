package gang

import (
	"testing"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	// The scheduling queue the tests activate pods on records into the scheduler's metrics.
	metrics.Register()
	// scheduler-plugins' fake clientset predates watch-list: its informers would never sync.
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(map[string]bool{"WatchListClient": false}); err != nil {
		panic(err)
	}
	m.Run()
}
