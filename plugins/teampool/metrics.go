package teampool

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

var (
	rejections = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "workbench_teampool",
		Name:           "filter_rejections_total",
		Help:           "TeamPool rejections, by reason: invalid_team counts pods, not_lendable counts nodes.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})
	placements = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "workbench_teampool",
		Name:           "placements_total",
		Help:           "Pods bound, by the tier of their node for their team: own, ancestor, shared, lent, unpooled.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"tier"})

	capacityDesc = metrics.NewDesc("workbench_resourcepool_capacity",
		"Allocatable of a ResourcePool's nodes (cpu in cores, memory in bytes, gpu in devices); pool \"\" is nodes in no pool.",
		[]string{"pool", "resource"}, nil, metrics.ALPHA, "")
	allocatedDesc = metrics.NewDesc("workbench_resourcepool_allocated",
		"Requests of the pods bound to a ResourcePool's nodes; pool \"\" is nodes in no pool.",
		[]string{"pool", "resource"}, nil, metrics.ALPHA, "")
	outsideDesc = metrics.NewDesc("workbench_team_pods_outside_own_pools",
		"Running pods of a team on nodes outside the pools the team owns.", []string{"team"}, nil, metrics.ALPHA, "")

	registerOnce sync.Once
	// source is the newest plugin instance; all profiles share the informers.
	source atomic.Pointer[TeamPool]
)

func registerMetrics(pl *TeamPool) {
	source.Store(pl)
	registerOnce.Do(func() {
		legacyregistry.MustRegister(rejections, placements)
		legacyregistry.CustomMustRegister(&poolCollector{})
	})
}

// countRejection and countPlacement look the counter up each time: /metrics supports a reset,
// after which a cached child would count unseen.
func countRejection(reason string) { rejections.WithLabelValues(reason).Inc() }

func countPlacement(tier string) { placements.WithLabelValues(tier).Inc() }

// outsideMaxAge bounds how often the per-team gauge walks every pod.
const outsideMaxAge = 10 * time.Second

type poolCollector struct {
	metrics.BaseStableCollector
	mu       sync.Mutex
	outside  map[string]int
	lastFrom *TeamPool
	lastAt   time.Time
}

func (c *poolCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- capacityDesc
	ch <- allocatedDesc
	ch <- outsideDesc
}

func (c *poolCollector) CollectWithStability(ch chan<- metrics.Metric) {
	pl := source.Load()
	if pl == nil {
		return
	}
	pools, unpooled := pl.index.summaries()
	emit := func(name string, a amounts, desc *metrics.Desc) {
		ch <- metrics.NewLazyConstMetric(desc, metrics.GaugeValue, float64(a.milliCPU)/1000, name, "cpu")
		ch <- metrics.NewLazyConstMetric(desc, metrics.GaugeValue, float64(a.memory), name, "memory")
		ch <- metrics.NewLazyConstMetric(desc, metrics.GaugeValue, float64(a.gpu), name, "gpu")
	}
	for _, ps := range append(pools, unpooled) {
		emit(ps.pool.name, ps.capacity, capacityDesc)
		emit(ps.pool.name, ps.allocated, allocatedDesc)
	}
	c.mu.Lock()
	if c.outside == nil || c.lastFrom != pl || time.Since(c.lastAt) >= outsideMaxAge {
		c.outside, c.lastFrom, c.lastAt = pl.podsOutsideOwnPools(pl.handle.SharedInformerFactory().Core().V1().Pods().Lister()), pl, time.Now()
	}
	outside := c.outside
	c.mu.Unlock()
	for t, n := range outside {
		ch <- metrics.NewLazyConstMetric(outsideDesc, metrics.GaugeValue, float64(n), t)
	}
}

// podsOutsideOwnPools counts, per team, bound pods on nodes not in a pool the team owns.
func (pl *TeamPool) podsOutsideOwnPools(pods corelisters.PodLister) map[string]int {
	out := map[string]int{}
	list, err := pods.List(labels.Everything())
	if err != nil {
		return out
	}
	for _, pod := range list {
		if !counted(pod) {
			continue
		}
		t, err := pl.teams.teamOf(pod)
		if err != nil || len(t) == 0 {
			continue
		}
		key := t.String()
		if p := pl.index.poolOf(pod.Spec.NodeName); p == nil || orgtree.AncestorDistance(t, p.owner) != 0 {
			out[key]++
		} else if _, ok := out[key]; !ok {
			out[key] = 0
		}
	}
	return out
}
