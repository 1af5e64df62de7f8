package topologyspread

import (
	"sync"
	"sync/atomic"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	selectorsDesc = metrics.NewDesc("workbench_topologyspread_index_selectors",
		"Selector signatures (namespace + selector) the spread index keeps per-node counts for.", nil, nil, metrics.ALPHA, "")
	aggregatesDesc = metrics.NewDesc("workbench_topologyspread_index_domain_tables",
		"Domain count tables (signature + topology key + node inclusion) the spread index keeps.", nil, nil, metrics.ALPHA, "")
	countedPodsDesc = metrics.NewDesc("workbench_topologyspread_index_counted_pods",
		"Pods counted by the spread index, summed over its selector signatures.", nil, nil, metrics.ALPHA, "")
	nodesRecountedDesc = metrics.NewDesc("workbench_topologyspread_index_nodes_recounted_total",
		"Nodes recounted because their NodeInfo changed since the previous scheduling cycle.", nil, nil, metrics.ALPHA, "")
	buildsDesc = metrics.NewDesc("workbench_topologyspread_index_builds_total",
		"Full builds, each a walk over the cluster: kind=selector (O(pods)) or kind=domain_table (O(nodes)).", []string{"kind"}, nil, metrics.ALPHA, "")
	droppedDesc = metrics.NewDesc("workbench_topologyspread_index_dropped_total",
		"Signatures and domain tables dropped after going unused.", nil, nil, metrics.ALPHA, "")

	syncDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Subsystem:      "workbench_topologyspread",
		Name:           "index_sync_duration_seconds",
		Help:           "Time to bring the spread index up to date with a scheduling cycle's snapshot.",
		Buckets:        metrics.ExponentialBuckets(0.00001, 4, 10),
		StabilityLevel: metrics.ALPHA,
	})

	registerOnce sync.Once
	// metricsSource is the newest plugin instance's index (one per profile using the plugin).
	metricsSource atomic.Pointer[spreadIndex]
	// published holds the figures of metricsSource as of its last cycle, so scrapes never
	// wait for the scheduling cycle's lock.
	published atomic.Pointer[indexFigures]
)

type indexFigures struct {
	selectors, aggregates, countedPods int
	stats                              indexStats
}

func registerMetrics(idx *spreadIndex) {
	metricsSource.Store(idx)
	registerOnce.Do(func() {
		legacyregistry.MustRegister(syncDuration)
		legacyregistry.CustomMustRegister(&indexCollector{})
	})
}

// publishFigures publishes the index's figures once per PreFilter/PreScore; idx.mu is held.
func publishFigures(idx *spreadIndex) {
	if metricsSource.Load() != idx {
		return
	}
	f := idx.figures()
	published.Store(&f)
}

// figures must be called with idx.mu held.
func (idx *spreadIndex) figures() indexFigures {
	return indexFigures{selectors: len(idx.selectors), aggregates: len(idx.aggregates), countedPods: int(idx.countedPods), stats: idx.stats}
}

type indexCollector struct {
	metrics.BaseStableCollector
}

func (c *indexCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- selectorsDesc
	ch <- aggregatesDesc
	ch <- countedPodsDesc
	ch <- nodesRecountedDesc
	ch <- buildsDesc
	ch <- droppedDesc
}

func (c *indexCollector) CollectWithStability(ch chan<- metrics.Metric) {
	f := published.Load()
	if f == nil {
		return
	}
	ch <- metrics.NewLazyConstMetric(selectorsDesc, metrics.GaugeValue, float64(f.selectors))
	ch <- metrics.NewLazyConstMetric(aggregatesDesc, metrics.GaugeValue, float64(f.aggregates))
	ch <- metrics.NewLazyConstMetric(countedPodsDesc, metrics.GaugeValue, float64(f.countedPods))
	ch <- metrics.NewLazyConstMetric(nodesRecountedDesc, metrics.CounterValue, float64(f.stats.nodesRecounted))
	ch <- metrics.NewLazyConstMetric(buildsDesc, metrics.CounterValue, float64(f.stats.selectorBuilds), "selector")
	ch <- metrics.NewLazyConstMetric(buildsDesc, metrics.CounterValue, float64(f.stats.aggregateBuilds), "domain_table")
	ch <- metrics.NewLazyConstMetric(droppedDesc, metrics.CounterValue, float64(f.stats.dropped))
}
