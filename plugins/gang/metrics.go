package gang

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Outcomes of a gang's admission, the label of gangs_total.
const (
	outcomeAdmitted  = "admitted"
	outcomeRejected  = "rejected"
	outcomeCompleted = "completed"
	outcomeAborted   = "aborted"
	outcomeTimedOut  = "timed_out"
)

var (
	decisionSeconds = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Subsystem:      "workbench_gang",
		Name:           "admission_decision_seconds",
		Help:           "Time to plan a gang on one snapshot, by result (admitted or rejected).",
		Buckets:        metrics.ExponentialBuckets(0.0005, 2, 16),
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	gangsTotal = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "workbench_gang",
		Name:           "gangs_total",
		Help:           "Gang admission outcomes: admitted, rejected (by reason), completed, aborted (a member failed) and timed_out.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"outcome", "reason"})

	waitingDesc = metrics.NewDesc("workbench_gang_waiting",
		"Gangs seen by this scheduler and not complete: admitted (placing members) or pending (not admitted).",
		[]string{"state"}, nil, metrics.ALPHA, "")
	reservedDesc = metrics.NewDesc("workbench_gang_reserved",
		"Capacity held for admitted gangs' members not placed yet (cpu in cores, memory in bytes, extended resources in units, pods).",
		[]string{"resource"}, nil, metrics.ALPHA, "")

	registerOnce sync.Once
	// source is the newest plugin instance, for the collector.
	source atomic.Pointer[Gang]
)

func registerMetrics(pl *Gang) {
	source.Store(pl)
	registerOnce.Do(func() {
		legacyregistry.MustRegister(decisionSeconds, gangsTotal)
		legacyregistry.CustomMustRegister(&gangCollector{})
	})
}

func observeDecision(d time.Duration, admitted bool) {
	result := "rejected"
	if admitted {
		result = "admitted"
	}
	decisionSeconds.WithLabelValues(result).Observe(d.Seconds())
}

func countOutcome(outcome, reason string) { gangsTotal.WithLabelValues(outcome, reason).Inc() }

type gangCollector struct{ metrics.BaseStableCollector }

func (c *gangCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- waitingDesc
	ch <- reservedDesc
}

func (c *gangCollector) CollectWithStability(ch chan<- metrics.Metric) {
	pl := source.Load()
	if pl == nil {
		return
	}
	pl.mu.Lock()
	admitted, pending := 0, 0
	for _, g := range pl.gangs {
		switch {
		case g.plan != nil && !g.plan.complete:
			admitted++
		case g.plan == nil:
			pending++
		}
	}
	held := pl.reservationsLocked("", 0)
	pl.mu.Unlock()
	ch <- metrics.NewLazyConstMetric(waitingDesc, metrics.GaugeValue, float64(admitted), "admitted")
	ch <- metrics.NewLazyConstMetric(waitingDesc, metrics.GaugeValue, float64(pending), "pending")
	var cpu, mem, pods float64
	ext := map[string]float64{}
	for _, r := range held {
		cpu += float64(r.MilliCPU) / 1000
		mem += float64(r.Memory)
		pods += float64(r.AllowedPodNumber)
		for name, v := range r.ScalarResources {
			ext[string(name)] += float64(v)
		}
	}
	ch <- metrics.NewLazyConstMetric(reservedDesc, metrics.GaugeValue, cpu, "cpu")
	ch <- metrics.NewLazyConstMetric(reservedDesc, metrics.GaugeValue, mem, "memory")
	ch <- metrics.NewLazyConstMetric(reservedDesc, metrics.GaugeValue, pods, "pods")
	for name, v := range ext {
		ch <- metrics.NewLazyConstMetric(reservedDesc, metrics.GaugeValue, v, name)
	}
}
