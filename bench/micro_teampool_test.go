package bench

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pkgruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	kcache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	wbfake "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned/fake"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
)

// TeamPool at 7,500 nodes and 200 ResourcePools: one pod's scheduling cycle as the scheduler
// runs it, for TeamPool and, in the same run, upstream's NodeResourcesFit (which every profile
// runs) as the yardstick. Run with make bench-micro.
//
// The org tree has 8 orgs of 4 groups of 5 teams; every team, group and org owns one pool of 30
// nodes (160 + 32 + 8 = 200 pools; the 5th team of each group lends its pool); 1,500 nodes are
// in no pool (shared tier). Nodes have 16 CPUs and pods ask for 1. Every pool of org-0, the team
// pools of org-2 and the unpooled nodes are full; every other node is half full. Incoming pods:
//   - own: org-1/group-0/team-0, whose pool has room (PreFilter narrows to its 30 nodes);
//   - ancestor: org-2/group-0/team-0, whose pool is full (narrows to its group's 30 nodes);
//   - lent: org-0/group-0/team-0, whose own, ancestors' and shared tiers are full: PreFilter
//     walks them (1,590 nodes) and narrows to the 32 lendable pools (960 nodes).
//
// One iteration: PreFilter; the candidate nodes (PreFilter's result looked up in the snapshot,
// as the scheduler does, or every node); Filter from a rotating start until the scheduler's
// sample of feasible nodes is found (375 of 7,500); PreScore, Score and NormalizeScore on them.
const (
	teamPoolNodes        = 7500
	teamPoolSlots        = 250 // slot = node index mod 250; slots 0-199 are pools, 200-249 no pool
	teamPoolPools        = 200
	teamPoolNodeCPU      = 16
	teamPoolPodsFullNode = 16
	teamPoolPodsHalfNode = 8
)

// teamPoolOwner returns pool p's owner (a team path) and whether it is lendable.
func teamPoolOwner(p int) (string, bool) {
	switch {
	case p < 160:
		return fmt.Sprintf("org-%d/group-%d/team-%d", p/20, p%20/5, p%5), p%5 == 4
	case p < 192:
		q := p - 160
		return fmt.Sprintf("org-%d/group-%d", q/4, q%4), false
	}
	return fmt.Sprintf("org-%d", p-192), false
}

// teamPoolSlotFull says which slots hold full nodes: org-0's pools, org-2's team pools and the
// unpooled slots.
func teamPoolSlotFull(slot int) bool {
	switch {
	case slot >= teamPoolPools:
		return true
	case slot < 160:
		return slot/20 == 0 || slot/20 == 2
	case slot < 192:
		return (slot-160)/4 == 0
	}
	return slot == 192
}

type teamPoolCluster struct {
	snapshot *cache.Snapshot
	nodes    []fwk.NodeInfo
	objects  []pkgruntime.Object
	pools    []pkgruntime.Object
	pods     int
}

func newTeamPoolCluster(b *testing.B) *teamPoolCluster {
	c := &teamPoolCluster{}
	var nodes []*corev1.Node
	var pods []*corev1.Pod
	for i := range teamPoolNodes {
		slot := i % teamPoolSlots
		name := fmt.Sprintf("node-%04d", i)
		node := st.MakeNode().Name(name).UID(name).Label(corev1.LabelHostname, name).
			Label("bench.workbench.dev/slot", fmt.Sprint(slot)).
			Capacity(map[corev1.ResourceName]string{corev1.ResourceCPU: fmt.Sprint(teamPoolNodeCPU), corev1.ResourceMemory: "64Gi", corev1.ResourcePods: "110"}).Obj()
		nodes = append(nodes, node)
		c.objects = append(c.objects, node)
		n := teamPoolPodsHalfNode
		if teamPoolSlotFull(slot) {
			n = teamPoolPodsFullNode
		}
		for j := range n {
			pod := teamPoolPod(fmt.Sprintf("running-%04d-%02d", i, j), "")
			pod.Spec.NodeName = name
			pods = append(pods, pod)
			c.objects = append(c.objects, pod)
		}
	}
	for p := range teamPoolPools {
		owner, lendable := teamPoolOwner(p)
		c.pools = append(c.pools, &workbenchv1alpha1.ResourcePool{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pool-%03d", p), UID: types.UID(fmt.Sprintf("pool-%03d", p))},
			Spec: workbenchv1alpha1.ResourcePoolSpec{Owner: owner, Lendable: lendable,
				NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"bench.workbench.dev/slot": fmt.Sprint(p)}}},
		})
	}
	c.snapshot = cache.NewSnapshot(pods, nodes)
	c.pods = len(pods)
	infos, err := c.snapshot.NodeInfos().List()
	must(b, err)
	c.nodes = infos
	return c
}

// teamPoolPod asks for 1 CPU and 4 GiB, with the team label when team is set ("a.b.c").
func teamPoolPod(name, team string) *corev1.Pod {
	w := st.MakePod().Namespace("ns").Name(name).UID(name).
		Req(map[corev1.ResourceName]string{corev1.ResourceCPU: "1", corev1.ResourceMemory: "4Gi"})
	if team != "" {
		w = w.Label(teampool.TeamLabel, team)
	}
	return w.Obj()
}

func (c *teamPoolCluster) teamPool(b *testing.B) filterScorer {
	_, ctx := ktesting.NewTestContext(b)
	ctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	factory := informers.NewSharedInformerFactory(clientsetfake.NewSimpleClientset(c.objects...), 0)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(c.snapshot), frameworkruntime.WithInformerFactory(factory))
	must(b, err)
	pl, err := teampool.NewWithClient(ctx, &config.TeamPoolArgs{
		UnpooledNodes: config.UnpooledNodesShared, GPUResourceNames: []string{"nvidia.com/gpu"},
		StatusUpdateInterval: metav1.Duration{Duration: 10 * time.Second}, LeaderLease: "-",
	}, fh, wbfake.NewSimpleClientset(c.pools...))
	must(b, err)
	factory.Start(ctx.Done())
	if !kcache.WaitForCacheSync(ctx.Done(), pl.Synced) {
		b.Fatal("TeamPool did not load the pools, nodes and pods")
	}
	return pl
}

func (c *teamPoolCluster) fit(b *testing.B) filterScorer {
	_, ctx := ktesting.NewTestContext(b)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(c.snapshot))
	must(b, err)
	fit, err := noderesources.NewFit(ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
		Type:      schedconfig.LeastAllocated,
		Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
	}}, fh, feature.Features{})
	must(b, err)
	return fit.(filterScorer)
}

// numFeasibleNodesToFind is the scheduler's sample size with the default
// percentageOfNodesToScore (schedule_one.go, v1.37.2).
func numFeasibleNodesToFind(n int) int {
	if n < 100 {
		return n
	}
	pct := max(50-n/125, 5)
	return max(n*pct/100, 100)
}

// cycle runs one scheduling cycle of pl for pod; start rotates the first node filtered, as the
// scheduler's nextStartNodeIndex does. It returns how many nodes were candidates.
func (c *teamPoolCluster) cycle(b *testing.B, pl filterScorer, pod *corev1.Pod, start *int) int {
	ctx := context.Background()
	state := framework.NewCycleState()
	res, s := pl.PreFilter(ctx, state, pod, c.nodes)
	if !s.IsSuccess() && !s.IsSkip() {
		b.Fatal(s)
	}
	candidates := c.nodes
	if !res.AllNodes() {
		candidates = make([]fwk.NodeInfo, 0, len(res.NodeNames))
		for name := range res.NodeNames {
			ni, err := c.snapshot.NodeInfos().Get(name)
			if err != nil { // not must: its t.Helper() would cost more than the lookup
				b.Fatal(err)
			}
			candidates = append(candidates, ni)
		}
	}
	want := numFeasibleNodesToFind(len(candidates))
	feasible := make([]fwk.NodeInfo, 0, want)
	for i := range candidates {
		ni := candidates[(*start+i)%len(candidates)]
		if pl.Filter(ctx, state, pod, ni).IsSuccess() {
			feasible = append(feasible, ni)
			if len(feasible) == want {
				break
			}
		}
	}
	*start += len(feasible)
	if len(feasible) == 0 {
		b.Fatalf("%s: no feasible node for %s", pl.Name(), pod.Name)
	}
	scoreAll(ctx, b, pl, state, pod, feasible)
	return len(candidates)
}

func BenchmarkTeamPool7500Nodes200Pools(b *testing.B) {
	c := newTeamPoolCluster(b)
	plugins := map[string]filterScorer{"NodeResourcesFit": c.fit(b), "TeamPool": c.teamPool(b)}
	// The setup's garbage is collected now, not during the first measured cycles.
	runtime.GC()
	incoming := []struct{ kind, team string }{
		{"own", "org-1.group-0.team-0"},
		{"ancestor", "org-2.group-0.team-0"},
		{"lent", "org-0.group-0.team-0"},
	}
	for _, in := range incoming {
		pod := teamPoolPod("incoming-"+in.kind, in.team)
		nsPerOp := map[string]float64{}
		candidates := map[string]int{}
		for _, name := range []string{"NodeResourcesFit", "TeamPool"} {
			b.Run(in.kind+"/"+name, func(b *testing.B) {
				start := 0
				for b.Loop() {
					candidates[name] = c.cycle(b, plugins[name], pod, &start)
				}
				nsPerOp[name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
		if fit, tp := nsPerOp["NodeResourcesFit"], nsPerOp["TeamPool"]; fit > 0 && tp > 0 {
			fmt.Printf("TeamPool, %s-tier pod, 7,500 nodes / 200 pools / %d pods: %.3f ms/pod (%d candidate nodes), %.2fx upstream's NodeResourcesFit (%.3f ms/pod over %d nodes)\n",
				in.kind, c.pods, tp/1e6, candidates["TeamPool"], tp/fit, fit/1e6, candidates["NodeResourcesFit"])
		}
	}
}
