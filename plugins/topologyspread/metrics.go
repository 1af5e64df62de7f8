package topologyspread

import (
	"sync"
	"sync/atomic"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	fwk "k8s.io/kube-scheduler/framework"
)

var (
	selectorsDesc = metrics.NewDesc("workbench_topologyspread_index_selectors",
		"Selector signatures (namespace + selector) the spread index keeps per-node counts for.", nil, nil, metrics.ALPHA, "")
	layoutsDesc = metrics.NewDesc("workbench_topologyspread_index_layouts",
		"Node layouts (topology key + required keys + node inclusion filter) the spread index keeps.", nil, nil, metrics.ALPHA, "")
	aggregatesDesc = metrics.NewDesc("workbench_topologyspread_index_domain_tables",
		"Domain count tables (selector x layout) the spread index keeps.", nil, nil, metrics.ALPHA, "")
	podRecordsDesc = metrics.NewDesc("workbench_topologyspread_index_pod_records",
		"Pods the spread index records, to tell label changes from status updates.", nil, nil, metrics.ALPHA, "")
	countedPodsDesc = metrics.NewDesc("workbench_topologyspread_index_counted_pods",
		"Pods counted by the spread index, summed over its selector signatures.", nil, nil, metrics.ALPHA, "")
	bytesDesc = metrics.NewDesc("workbench_topologyspread_index_bytes",
		"Estimated heap held by the spread index, from its entry counts.", nil, nil, metrics.ALPHA, "")
	nodesRecountedDesc = metrics.NewDesc("workbench_topologyspread_index_nodes_recounted_total",
		"Nodes whose pods were diffed because their NodeInfo changed since the previous scheduling cycle.", nil, nil, metrics.ALPHA, "")
	podChangesDesc = metrics.NewDesc("workbench_topologyspread_index_pod_changes_total",
		"Pods that appeared, left, changed labels or started terminating, each matched against its namespace's selectors.", nil, nil, metrics.ALPHA, "")
	buildsDesc = metrics.NewDesc("workbench_topologyspread_index_builds_total",
		"Builds: kind=selector (a walk over the namespace's pods), layout (over the nodes) or domain_table (over the nodes a selector matches).", []string{"kind"}, nil, metrics.ALPHA, "")
	droppedDesc = metrics.NewDesc("workbench_topologyspread_index_dropped_total",
		"Signatures, layouts and domain tables dropped after going unused.", nil, nil, metrics.ALPHA, "")
	cancelledDesc = metrics.NewDesc("workbench_topologyspread_index_builds_cancelled_total",
		"Selector builds discarded because the scheduling cycle's context ended first.", nil, nil, metrics.ALPHA, "")

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
	selectors, layouts, aggregates int
	size                           indexSize
	bytes                          int64
	stats                          indexStats
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
	var names int64
	for _, t := range idx.domainTables {
		names += int64(len(t.id))
	}
	holders := len(idx.selectors) + len(idx.layouts) + len(idx.aggregates)
	return indexFigures{
		selectors: len(idx.selectors), layouts: len(idx.layouts), aggregates: len(idx.aggregates),
		size: idx.size, bytes: idx.size.bytes(names, holders), stats: idx.stats,
	}
}

type indexCollector struct {
	metrics.BaseStableCollector
}

func (c *indexCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	for _, d := range []*metrics.Desc{selectorsDesc, layoutsDesc, aggregatesDesc, podRecordsDesc, countedPodsDesc, bytesDesc,
		nodesRecountedDesc, podChangesDesc, buildsDesc, droppedDesc, cancelledDesc} {
		ch <- d
	}
}

func (c *indexCollector) CollectWithStability(ch chan<- metrics.Metric) {
	f := published.Load()
	if f == nil {
		return
	}
	gauge := func(d *metrics.Desc, v float64) { ch <- metrics.NewLazyConstMetric(d, metrics.GaugeValue, v) }
	counter := func(d *metrics.Desc, v int64, labels ...string) {
		ch <- metrics.NewLazyConstMetric(d, metrics.CounterValue, float64(v), labels...)
	}
	gauge(selectorsDesc, float64(f.selectors))
	gauge(layoutsDesc, float64(f.layouts))
	gauge(aggregatesDesc, float64(f.aggregates))
	gauge(podRecordsDesc, float64(f.size.pods))
	gauge(countedPodsDesc, float64(f.size.countedPods))
	gauge(bytesDesc, float64(f.bytes))
	counter(nodesRecountedDesc, f.stats.nodesRecounted)
	counter(podChangesDesc, f.stats.podChanges)
	counter(buildsDesc, f.stats.selectorBuilds, "selector")
	counter(buildsDesc, f.stats.layoutBuilds, "layout")
	counter(buildsDesc, f.stats.aggregateBuilds, "domain_table")
	counter(droppedDesc, f.stats.dropped)
	counter(cancelledDesc, f.stats.buildsCancelled)
}

// EstimatedIndexBytes returns the index's own estimate of its heap, for benchmarks; pl must be
// an IndexedPodTopologySpread.
func EstimatedIndexBytes(pl fwk.Plugin) float64 {
	p, ok := pl.(*IndexedPodTopologySpread)
	if !ok {
		return 0
	}
	p.index.mu.Lock()
	defer p.index.mu.Unlock()
	return float64(p.index.figures().bytes)
}
