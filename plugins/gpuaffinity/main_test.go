package gpuaffinity

import (
	"testing"

	"k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	// The scheduling queue PostFilter activates pods on records into the scheduler's metrics.
	metrics.Register()
	m.Run()
}
