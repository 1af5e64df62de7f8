package topologyspread

import (
	"os"
	"testing"

	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	// The scheduler cache the tests drive reports its own metrics.
	schedmetrics.Register()
	os.Exit(m.Run())
}
