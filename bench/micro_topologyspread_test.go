package bench

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/topologyspread"
)

// Topology spread at 7,500 nodes and 200,000 pods (2,000 Deployments of 100 pods in 20
// namespaces, 3 zones), driven like the scheduler drives it: each iteration is one scheduling
// cycle on the real scheduler cache's snapshot (UpdateSnapshot untimed), PreFilter plus Filter
// until 375 feasible nodes are found (the scheduler's sample at this size), PreScore plus Score
// over them, then the pod is assumed on the best node so the next cycle sees one node changed.
// Incoming pods belong to 20 Deployments that are scaling up. Upstream and indexed run in the
// same invocation on the same cluster; the ratio is printed at the end.
const (
	spreadNodes        = 7500
	spreadDeployments  = 2000
	spreadPodsPerDep   = 100
	spreadActive       = 20
	spreadFeasibleGoal = 375
)

// spreadNamespaces spreads the Deployments over namespaces. Upstream's walk skips pods of other
// namespaces before matching labels, so fewer namespaces cost upstream more.
var spreadNamespaces = flag.Int("spread.namespaces", 20, "namespaces the micro benchmark's 2,000 Deployments are spread over")

type spreadPlugin interface {
	fwk.PreFilterPlugin
	fwk.FilterPlugin
	fwk.PreScorePlugin
	fwk.ScorePlugin
}

type spreadCluster struct {
	logger   klog.Logger
	cache    cache.Cache
	snapshot *cache.Snapshot
	handle   fwk.Handle
	next     int
	start    int
	// active is how many Deployments incoming pods rotate over (the live selectors).
	active int
	// running lists the bound pods, for status updates.
	running []*corev1.Pod
	rng     *rand.Rand
	// lastPreFilter is the last hard cycle's PreFilter time: all of the index's work (sync,
	// builds, sweep) happens there; Filter only reads.
	lastPreFilter time.Duration
}

func newSpreadCluster(b *testing.B) *spreadCluster {
	return newSpreadClusterOf(b, spreadDeployments, spreadPodsPerDep)
}

func newSpreadClusterOf(b *testing.B, deployments, podsPerDeployment int) *spreadCluster {
	schedmetrics.Register()
	logger, ctx := ktesting.NewTestContext(b)
	c := &spreadCluster{logger: logger, cache: cache.New(ctx, nil, false, false), snapshot: cache.NewEmptySnapshot(), active: spreadActive, rng: rand.New(rand.NewSource(2))}
	zones := []string{"zone-a", "zone-b", "zone-c"}
	for i := range spreadNodes {
		name := fmt.Sprintf("node-%04d", i)
		c.cache.AddNode(logger, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelTopologyZone: zones[i%len(zones)],
		}}})
	}
	rng := rand.New(rand.NewSource(1))
	for d := range deployments {
		for r := range podsPerDeployment {
			p := spreadPod(d, r)
			p.Spec.NodeName = fmt.Sprintf("node-%04d", rng.Intn(spreadNodes))
			must(b, c.cache.AddPod(logger, p))
			c.running = append(c.running, p)
		}
	}
	must(b, c.cache.UpdateSnapshot(logger, c.snapshot))
	factory := informers.NewSharedInformerFactory(clientsetfake.NewClientset(), 0)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(c.snapshot), frameworkruntime.WithInformerFactory(factory))
	must(b, err)
	c.handle = fh
	c.next = podsPerDeployment
	return c
}

// statusUpdates replaces n random running pods with new objects that differ only in status, as
// kubelet status updates do (the cache removes and re-adds each, moving its node's generation).
func (c *spreadCluster) statusUpdates(b *testing.B, n int) {
	for range n {
		i := c.rng.Intn(len(c.running))
		old := c.running[i]
		p := *old
		p.Labels = maps.Clone(old.Labels)
		p.ResourceVersion = fmt.Sprint(c.rng.Int63())
		p.Status.Phase = corev1.PodRunning
		must(b, c.cache.UpdatePod(c.logger, old, &p))
		c.running[i] = &p
	}
}

func spreadPod(deployment, replica int) *corev1.Pod {
	name := fmt.Sprintf("dep-%04d-%d", deployment, replica)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: fmt.Sprintf("ns-%02d", deployment%*spreadNamespaces), UID: types.UID(name),
		Labels: map[string]string{"app": fmt.Sprintf("dep-%04d", deployment), "pod-template-hash": "h1"},
	}}
}

// incoming returns the next pod of one of the active Deployments, with hard or soft
// zone and hostname constraints.
func (c *spreadCluster) incoming(hard bool) *corev1.Pod {
	d := c.next % c.active
	p := spreadPod(d, c.next)
	c.next++
	when := corev1.ScheduleAnyway
	if hard {
		when = corev1.DoNotSchedule
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": p.Labels["app"]}}
	p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
		{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: when, LabelSelector: sel},
		{MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: when, LabelSelector: sel, MatchLabelKeys: []string{"pod-template-hash"}},
	}
	return p
}

// cycle runs one scheduling cycle of pl for pod and returns the chosen node.
func (c *spreadCluster) cycle(b *testing.B, pl spreadPlugin, pod *corev1.Pod, nodes []fwk.NodeInfo, hard bool) string {
	ctx := context.Background()
	state := framework.NewCycleState()
	var feasible []fwk.NodeInfo
	if hard {
		start := time.Now()
		if _, s := pl.PreFilter(ctx, state, pod, nodes); !s.IsSuccess() {
			b.Fatal(s)
		}
		c.lastPreFilter = time.Since(start)
		for i := range nodes {
			n := nodes[(c.start+i)%len(nodes)]
			if s := pl.Filter(ctx, state, pod, n); s.IsSuccess() {
				feasible = append(feasible, n)
				if len(feasible) == spreadFeasibleGoal {
					c.start = (c.start + i + 1) % len(nodes)
					break
				}
			}
		}
		if len(feasible) == 0 {
			b.Fatal("no feasible node")
		}
		return feasible[0].Node().Name
	}
	for i := range spreadFeasibleGoal {
		feasible = append(feasible, nodes[(c.start+i)%len(nodes)])
	}
	c.start = (c.start + spreadFeasibleGoal) % len(nodes)
	if s := pl.PreScore(ctx, state, pod, feasible); !s.IsSuccess() {
		b.Fatal(s)
	}
	scores := make(fwk.NodeScoreList, 0, len(feasible))
	for _, n := range feasible {
		sc, s := pl.Score(ctx, state, pod, n)
		if !s.IsSuccess() {
			b.Fatal(s)
		}
		scores = append(scores, fwk.NodeScore{Name: n.Node().Name, Score: sc})
	}
	pl.ScoreExtensions().NormalizeScore(ctx, state, pod, scores)
	best := scores[0]
	for _, s := range scores {
		if s.Score > best.Score {
			best = s
		}
	}
	return best.Name
}

func (c *spreadCluster) assume(b *testing.B, pod *corev1.Pod, node string) {
	pod.Spec.NodeName = node
	must(b, c.cache.AssumePod(c.logger, pod))
	must(b, c.cache.UpdateSnapshot(c.logger, c.snapshot))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func BenchmarkTopologySpread7500Nodes200kPods(b *testing.B) {
	c := newSpreadCluster(b)
	_, ctx := ktesting.NewTestContext(b)
	args := &schedconfig.PodTopologySpreadArgs{DefaultingType: schedconfig.SystemDefaulting}
	// Upstream's features come from the same gates topologyspread.New reads.
	fts := feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	nsPerOp := map[string]float64{}
	// amortized includes the warm-up cycles, in which the index builds its counts.
	amortized := map[string]float64{}
	measured := 0
	// Plugins stay referenced so that each one's retained heap is its own, not net of the last.
	var keepAlive []spreadPlugin
	defer runtime.KeepAlive(&keepAlive)
	for _, hard := range []bool{true, false} {
		kind := "soft"
		if hard {
			kind = "hard"
		}
		for _, impl := range []string{"upstream", "indexed"} {
			b.Run(kind+"/"+impl, func(b *testing.B) {
				before := heapInUse()
				var pl spreadPlugin
				if impl == "upstream" {
					p, err := podtopologyspread.New(ctx, args, c.handle, fts)
					must(b, err)
					pl = p.(spreadPlugin)
				} else {
					p, err := topologyspread.New(ctx, &config.IndexedPodTopologySpreadArgs{DefaultingType: args.DefaultingType}, c.handle)
					must(b, err)
					pl = p.(spreadPlugin)
				}
				// Warm up: one cycle per active Deployment builds the index's counts.
				warm := time.Now()
				nodes, _ := c.snapshot.NodeInfos().List()
				for range spreadActive {
					pod := c.incoming(hard)
					c.assume(b, pod, c.cycle(b, pl, pod, nodes, hard))
				}
				warmup := time.Since(warm)
				warmupMs := float64(warmup.Milliseconds()) / spreadActive
				keepAlive = append(keepAlive, pl)
				retained := float64(heapInUse() - min(before, heapInUse()))
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					pod := c.incoming(hard)
					nodes, _ := c.snapshot.NodeInfos().List()
					b.StartTimer()
					node := c.cycle(b, pl, pod, nodes, hard)
					b.StopTimer()
					c.assume(b, pod, node)
					b.StartTimer()
				}
				nsPerOp[kind+"/"+impl] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				amortized[kind+"/"+impl] = float64((b.Elapsed() + warmup).Nanoseconds()) / float64(b.N+spreadActive)
				measured = b.N
				b.ReportMetric(warmupMs, "warmup-ms/pod")
				// Heap the plugin holds after warm-up: for the indexed plugin, its index for the
				// active Deployments' selectors.
				b.ReportMetric(retained, "retained-bytes")
			})
		}
		if up, ix := nsPerOp[kind+"/upstream"], nsPerOp[kind+"/indexed"]; up > 0 && ix > 0 {
			upA, ixA := amortized[kind+"/upstream"], amortized[kind+"/indexed"]
			fmt.Printf("TopologySpread %s constraints, 7,500 nodes / 200,000 pods in %d namespaces: steady state upstream %.2f ms/pod, indexed %.3f ms/pod, %.1fx faster; "+
				"amortized over %d warm-up + %d measured cycles: upstream %.2f, indexed %.3f ms/pod, %.1fx\n",
				kind, *spreadNamespaces, up/1e6, ix/1e6, up/ix, spreadActive, measured, upA/1e6, ixA/1e6, upA/ixA)
		}
	}
}

// The churn variant: incoming pods rotate over many Deployments (one zone and one hostname
// selector each, all live in the index), and between two cycles some running pods get kubelet
// status updates. Both plugins run on the same cache in the same invocation; each row prints
// the ratio. Warm-up (the index's first count of each selector) is reported separately and in
// the amortized figure.
var (
	churnSelectors = flag.String("spread.churn.selectors", "20,500,2000", "live Deployments swept by the churn benchmark")
	churnUpdates   = flag.String("spread.churn.updates", "0,5,10", "status updates between cycles swept by the churn benchmark")
)

func BenchmarkTopologySpreadChurn(b *testing.B) {
	c := newSpreadCluster(b)
	_, ctx := ktesting.NewTestContext(b)
	args := &schedconfig.PodTopologySpreadArgs{DefaultingType: schedconfig.SystemDefaulting}
	// Upstream's features come from the same gates topologyspread.New reads.
	fts := feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	for _, active := range parseInts(b, *churnSelectors) {
		// One indexed plugin per selector count, warmed once: its rows differ only in churn.
		p, err := topologyspread.New(ctx, &config.IndexedPodTopologySpreadArgs{DefaultingType: args.DefaultingType}, c.handle)
		must(b, err)
		indexed := p.(spreadPlugin)
		c.active = active
		warm := time.Now()
		nodes, _ := c.snapshot.NodeInfos().List()
		for range active {
			pod := c.incoming(true)
			c.assume(b, pod, c.cycle(b, indexed, pod, nodes, true))
			nodes, _ = c.snapshot.NodeInfos().List()
		}
		warmup := time.Since(warm)
		for _, updates := range parseInts(b, *churnUpdates) {
			nsPerOp := map[string]float64{}
			for _, impl := range []string{"upstream", "indexed"} {
				name := fmt.Sprintf("selectors=%d/updates=%d/%s", active, updates, impl)
				b.Run(name, func(b *testing.B) {
					pl := indexed
					if impl == "upstream" {
						up, err := podtopologyspread.New(ctx, args, c.handle, fts)
						must(b, err)
						pl = up.(spreadPlugin)
					}
					var worst, worstPreFilter time.Duration
					for b.Loop() {
						b.StopTimer()
						c.statusUpdates(b, updates)
						must(b, c.cache.UpdateSnapshot(c.logger, c.snapshot))
						pod := c.incoming(true)
						nodes, _ := c.snapshot.NodeInfos().List()
						start := time.Now()
						b.StartTimer()
						node := c.cycle(b, pl, pod, nodes, true)
						b.StopTimer()
						worst = max(worst, time.Since(start))
						worstPreFilter = max(worstPreFilter, c.lastPreFilter)
						c.assume(b, pod, node)
						b.StartTimer()
					}
					nsPerOp[impl] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
					b.ReportMetric(float64(worstPreFilter.Microseconds())/1000, "worst-prefilter-ms")
				})
			}
			if up, ix := nsPerOp["upstream"], nsPerOp["indexed"]; up > 0 && ix > 0 {
				fmt.Printf("TopologySpread churn, hard zone+hostname, 7,500 nodes / 200,000 pods in %d namespaces, %d live Deployments (%d selectors), %d status updates per cycle: upstream %.2f ms/pod, indexed %.3f ms/pod, %.1fx faster (index warm-up %.1f ms per Deployment)\n",
					*spreadNamespaces, active, 2*active, updates, up/1e6, ix/1e6, up/ix, float64(warmup.Microseconds())/1000/float64(active))
			}
		}
		runtime.KeepAlive(indexed)
	}
}

// BenchmarkTopologySpreadIndexMemory measures the index's heap at 3,500 live hostname
// selectors: 7,500 nodes and 199,500 pods in 3,500 Deployments, one incoming pod per Deployment
// with a hard hostname constraint. It reports the heap retained and the index's own estimate.
func BenchmarkTopologySpreadIndexMemory(b *testing.B) {
	const deployments = 3500
	c := newSpreadClusterOf(b, deployments, 57)
	c.active = deployments
	_, ctx := ktesting.NewTestContext(b)
	// One measurement, whatever b.N is: the figure is the heap, not a time. (The framework calls
	// a benchmark twice; the second call would find the first index still registered as the
	// metrics source in its "before" heap.)
	if memoryMeasured {
		b.Skip("measured in the first call")
	}
	memoryMeasured = true
	{
		before := heapInUse()
		p, err := topologyspread.New(ctx, &config.IndexedPodTopologySpreadArgs{DefaultingType: schedconfig.ListDefaulting}, c.handle)
		must(b, err)
		pl := p.(spreadPlugin)
		nodes, _ := c.snapshot.NodeInfos().List()
		for range deployments {
			pod := c.incoming(true)
			pod.Spec.TopologySpreadConstraints = pod.Spec.TopologySpreadConstraints[1:] // hostname only
			c.cycle(b, pl, pod, nodes, true)
		}
		retained := heapInUse() - min(before, heapInUse())
		b.ReportMetric(float64(retained)/1e6, "index-MB")
		b.ReportMetric(topologyspread.EstimatedIndexBytes(pl)/1e6, "estimate-MB")
		fmt.Printf("TopologySpread index memory, 7,500 nodes / 199,500 pods, %d live hostname selectors: %.1f MB retained (index's estimate %.1f MB)\n",
			deployments, float64(retained)/1e6, topologyspread.EstimatedIndexBytes(pl)/1e6)
		runtime.KeepAlive(pl)
	}
}

var memoryMeasured bool

func parseInts(b *testing.B, list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		must(b, err)
		out = append(out, n)
	}
	return out
}
