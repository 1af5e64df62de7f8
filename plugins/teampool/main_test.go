package teampool

import (
	"testing"

	"k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	// The scheduling queue the tests activate pods on records into the scheduler's metrics.
	metrics.Register()
	m.Run()
}
