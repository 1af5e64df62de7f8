package perf

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
)

// The Sessions workload's measurement: for each gang (the pods sharing a PodGroup label), the
// time from its last member's creation to its last member's binding. metadata.creationTimestamp
// and the PodScheduled condition have a resolution of one second, too coarse for a 2 s target,
// so a pod informer started by the prepare hook, before the workload's first op, records when it
// first sees each member and when it first sees it bound. Both instants carry the same watch
// delay, which cancels out in the difference.

// gangTarget is the target: a gang fully bound within 2 s while the cluster has room.
const gangTarget = 2 * time.Second

// gangLatency is the Sessions workload's figures, recorded in the run record.
var gangLatency *perfrun.GangLatency

type watchedMember struct {
	gang        string
	gpu         bool
	seen, bound time.Time
}

type gangWatch struct {
	mu      sync.Mutex
	members map[types.UID]*watchedMember
}

func (w *gangWatch) observe(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.members[pod.UID]
	if m == nil {
		reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
		gpus := reqs[v1.ResourceName("nvidia.com/gpu")]
		m = &watchedMember{gang: pod.Namespace + "/" + pod.Labels[gang.GroupLabel], gpu: !gpus.IsZero(), seen: now}
		w.members[pod.UID] = m
	}
	if m.bound.IsZero() && pod.Spec.NodeName != "" {
		m.bound = now
	}
}

// watchGangs starts the informer and registers the check that reports its figures after the
// workload's barrier, before scheduler_perf stops the scheduler and the apiserver.
func watchGangs(tCtx ktesting.TContext) error {
	w := &gangWatch{members: map[types.UID]*watchedMember{}}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(tCtx.Client(), 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = gang.GroupLabel }))
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, cur any) { w.observe(cur) },
	}); err != nil {
		cancel()
		return err
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(tCtx.Done()) {
		if !ok {
			cancel()
			factory.Shutdown()
			return fmt.Errorf("gang member informer (%v) did not sync", typ)
		}
	}
	// Cleanups run last registered first: this one after the workload's own (the barrier has
	// passed) and before scheduler_perf stops the scheduler and the apiserver.
	tCtx.CleanupCtx(func(tCtx ktesting.TContext) {
		cancel()
		factory.Shutdown()
		if tCtx.Failed() {
			return
		}
		gangLatency = w.summary()
		l := gangLatency
		fmt.Printf("Sessions gang latency %s: %d gangs (%d pods), last member created to all bound: p50 %.0f ms, p99 %.0f ms (GPU gangs %.0f ms), max %.0f ms; within %s: %d of %d; never bound: %d\n",
			tCtx.Name(), l.Gangs, l.Pods, l.P50Ms, l.P99Ms, l.GPUP99Ms, l.MaxMs, gangTarget, l.Within2s, l.Gangs, l.Unbound)
	})
	return nil
}

// summary computes the gangs' latencies from what the informer saw.
func (w *gangWatch) summary() *perfrun.GangLatency {
	type gangTimes struct {
		lastSeen, lastBound time.Time
		unbound, gpu        bool
	}
	w.mu.Lock()
	gangs := map[string]*gangTimes{}
	for _, m := range w.members {
		g := gangs[m.gang]
		if g == nil {
			g = &gangTimes{}
			gangs[m.gang] = g
		}
		g.gpu = g.gpu || m.gpu
		if m.seen.After(g.lastSeen) {
			g.lastSeen = m.seen
		}
		if m.bound.IsZero() {
			g.unbound = true
		} else if m.bound.After(g.lastBound) {
			g.lastBound = m.bound
		}
	}
	l := &perfrun.GangLatency{Gangs: len(gangs), Pods: len(w.members)}
	w.mu.Unlock()
	var all, gpu []time.Duration
	for _, g := range gangs {
		if g.unbound {
			l.Unbound++
			continue
		}
		d := g.lastBound.Sub(g.lastSeen)
		all = append(all, d)
		if g.gpu {
			gpu = append(gpu, d)
		}
		if d <= gangTarget {
			l.Within2s++
		}
	}
	slices.Sort(all)
	slices.Sort(gpu)
	l.P50Ms, l.P99Ms, l.GPUP99Ms = percentileMs(all, 0.50), percentileMs(all, 0.99), percentileMs(gpu, 0.99)
	if len(all) > 0 {
		l.MaxMs = ms(all[len(all)-1])
	}
	return l
}

// percentileMs is the nearest-rank percentile of sorted durations, in milliseconds.
func percentileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return ms(sorted[max(i, 0)])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
