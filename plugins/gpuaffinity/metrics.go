package gpuaffinity

import (
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	fwk "k8s.io/kube-scheduler/framework"
)

// rejectionReason is why Filter (or PreFilter, for invalid_request) turned a node down; its
// value is its slot in the rejection counter.
type rejectionReason uint8

// Rejection reasons; reasonNames holds their metric label values.
const (
	reasonInvalidRequest rejectionReason = iota
	reasonCPUPodGPUNode
	reasonSpecialSKU
	reasonUnlabelledGPUNode
	reasonModelMismatch
	reasonMemoryTooSmall
	reasonMissingLabel
	reasonNoGPUs
	numReasons
)

var reasonNames = [numReasons]string{
	reasonInvalidRequest:    "invalid_request",
	reasonCPUPodGPUNode:     "cpu_pod_on_gpu_node",
	reasonSpecialSKU:        "special_sku",
	reasonUnlabelledGPUNode: "unlabelled_gpu_node",
	reasonModelMismatch:     "model_mismatch",
	reasonMemoryTooSmall:    "memory_too_small",
	reasonMissingLabel:      "missing_label",
	reasonNoGPUs:            "no_gpus",
}

var (
	rejectionsDesc = metrics.NewDesc("workbench_gpuaffinity_filter_rejections_total",
		"Nodes rejected by the GPUAffinity filter, by reason (invalid_request counts pods).", []string{"reason"}, nil, metrics.ALPHA, "")
	// rejections counts on the filter path, once per rejected node.
	rejections = &rejectionCounter{}

	freeGPUsDesc = metrics.NewDesc("workbench_gpu_free",
		"GPU units not requested by any pod, by product label value; a MIG slice or a shared GPU counts as one unit.", []string{"product"}, nil, metrics.ALPHA, "")
	fragmentedDesc = metrics.NewDesc("workbench_gpu_free_fragmented",
		"Free GPUs on GPU nodes that are partly used: capacity a whole-node request cannot use.", nil, nil, metrics.ALPHA, "")
	idleFreeDesc = metrics.NewDesc("workbench_gpu_free_on_idle_nodes",
		"Free GPUs on GPU nodes with no GPU in use.", nil, nil, metrics.ALPHA, "")
	idleNodesDesc = metrics.NewDesc("workbench_gpu_idle_nodes",
		"GPU nodes with no GPU in use.", nil, nil, metrics.ALPHA, "")

	// packingCandidates observes, per GPU pod whose cycle PreFilter could narrow, how many nodes
	// could hold it: the nodes Score would rank without sampling.
	packingCandidates = metrics.NewHistogram(&metrics.HistogramOpts{
		Name: "workbench_gpuaffinity_packing_candidates",
		Help: "GPU nodes with free units for a GPU pod's whole request that GPUAffinity's rules accept, " +
			"per scheduling cycle PreFilter could narrow (within earlier plugins' narrowing).",
		Buckets:        []float64{0, 1, 10, 50, 99, 250, 500, 1000, 2500, 5000},
		StabilityLevel: metrics.ALPHA,
	})
	// narrowings counts PreFilter's decisions for GPU pods, and PostFilter's fallbacks.
	narrowings = metrics.NewCounterVec(&metrics.CounterOpts{
		Name: "workbench_gpuaffinity_narrowing_total",
		Help: "GPU pods' scheduling cycles by what GPUAffinity's PreFilter did: narrowed (to the best-packed nodes), " +
			"no_room (no node has free units: not narrowed), small_set (earlier plugins narrowed below the sampling floor), " +
			"skipped (DRA, node-name affinity, gang planning over every tier), wide (retry after a fallback), " +
			"and fallback (PostFilter: every narrowed node failed Filter).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"outcome"})

	registerOnce sync.Once
	// inventorySource is the newest plugin instance; all profiles share the informers.
	inventorySource atomic.Pointer[gpuInventory]
)

// gpuInventory reads GPU usage from the scheduler's informer caches when metrics are scraped,
// so that the scheduling path pays nothing for these gauges.
type gpuInventory struct {
	nodes        corelisters.NodeLister
	pods         corelisters.PodLister
	classes      *gpuClasses
	productLabel string
}

func registerMetrics(h fwk.Handle, pl *GPUAffinity) {
	if f := h.SharedInformerFactory(); f != nil {
		inventorySource.Store(&gpuInventory{
			nodes:        f.Core().V1().Nodes().Lister(),
			pods:         f.Core().V1().Pods().Lister(),
			classes:      pl.classes,
			productLabel: pl.productLabel,
		})
	}
	registerOnce.Do(func() {
		legacyregistry.CustomMustRegister(rejections, &inventoryCollector{})
		legacyregistry.MustRegister(packingCandidates, narrowings)
	})
}

// countRejection costs one atomic add. A CounterVec would cost a label lookup per rejected
// node (hashing, a read lock every filtering goroutine shares), and its children cannot be
// cached: a /metrics reset (DELETE) drops them, and a cached child would then count unseen.
// Here the counts are ours, and the registry's reset zeroes them in place (Reset below).
func countRejection(reason rejectionReason) {
	rejections.counts[reason].Add(1)
}

// rejectionCounter serves workbench_gpuaffinity_filter_rejections_total from one atomic counter
// per reason; every reason is served from the start, at 0 until it happens.
type rejectionCounter struct {
	metrics.BaseStableCollector
	counts [numReasons]atomic.Uint64
}

func (c *rejectionCounter) DescribeWithStability(ch chan<- *metrics.Desc) { ch <- rejectionsDesc }

func (c *rejectionCounter) CollectWithStability(ch chan<- metrics.Metric) {
	for r := range numReasons {
		ch <- metrics.NewLazyConstMetric(rejectionsDesc, metrics.CounterValue, float64(c.counts[r].Load()), reasonNames[r])
	}
}

// Reset zeroes the counts; the registry calls it when /metrics is reset, as it resets its own
// counters.
func (c *rejectionCounter) Reset() {
	for i := range c.counts {
		c.counts[i].Store(0)
	}
}

// summaryMaxAge bounds how often the gauges walk every pod: a scrape within this age of the
// last computation reuses it. One walk costs ~0.13 s of a core at 200,000 pods, and some
// scrapers (several Prometheus replicas, scheduler_perf's once-a-second gather) come often.
const summaryMaxAge = 10 * time.Second

type inventoryCollector struct {
	metrics.BaseStableCollector
	mu       sync.Mutex
	last     *gpuSummary
	lastFrom *gpuInventory
	lastAt   time.Time
}

func (c *inventoryCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- freeGPUsDesc
	ch <- fragmentedDesc
	ch <- idleFreeDesc
	ch <- idleNodesDesc
}

func (c *inventoryCollector) CollectWithStability(ch chan<- metrics.Metric) {
	inv := inventorySource.Load()
	if inv == nil {
		return
	}
	c.mu.Lock()
	s := c.last
	if s == nil || c.lastFrom != inv || time.Since(c.lastAt) >= summaryMaxAge {
		var err error
		if s, err = inv.summarize(); err != nil {
			c.mu.Unlock()
			return
		}
		c.last, c.lastFrom, c.lastAt = s, inv, time.Now()
	}
	c.mu.Unlock()
	for product, free := range s.freeByProduct {
		ch <- metrics.NewLazyConstMetric(freeGPUsDesc, metrics.GaugeValue, float64(free), product)
	}
	ch <- metrics.NewLazyConstMetric(fragmentedDesc, metrics.GaugeValue, float64(s.fragmentedFree))
	ch <- metrics.NewLazyConstMetric(idleFreeDesc, metrics.GaugeValue, float64(s.idleFree))
	ch <- metrics.NewLazyConstMetric(idleNodesDesc, metrics.GaugeValue, float64(s.idleNodes))
}

type gpuSummary struct {
	freeByProduct  map[string]int64
	fragmentedFree int64
	idleFree       int64
	idleNodes      int64
}

func (inv *gpuInventory) summarize() (*gpuSummary, error) {
	nodes, err := inv.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	pods, err := inv.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	used := map[string]int64{}
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		if n := countGPUs(p, inv.classes); n > 0 {
			used[p.Spec.NodeName] += n
		}
	}
	s := &gpuSummary{freeByProduct: map[string]int64{}}
	for _, node := range nodes {
		allocatable := nodeAllocatableGPUs(node, inv.classes)
		if allocatable == 0 {
			continue
		}
		free := max(allocatable-used[node.Name], 0)
		s.freeByProduct[node.Labels[inv.productLabel]] += free
		switch {
		case free == allocatable:
			s.idleNodes++
			s.idleFree += free
		case free > 0:
			s.fragmentedFree += free
		}
	}
	return s, nil
}

// Narrowing outcomes: the values of workbench_gpuaffinity_narrowing_total's outcome label.
const (
	narrowingNarrowed = "narrowed"
	narrowingNoRoom   = "no_room"
	narrowingSmallSet = "small_set"
	narrowingSkipped  = "skipped"
	narrowingWide     = "wide"
	narrowingFallback = "fallback"
)

// countNarrowing costs a label lookup once per GPU pod's cycle, not per node.
func countNarrowing(outcome string) { narrowings.WithLabelValues(outcome).Inc() }

func observeCandidates(n int) { packingCandidates.Observe(float64(n)) }
