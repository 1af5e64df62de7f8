package gpuaffinity

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/narrowing"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/tierhint"
)

// tierStandIn narrows every cycle to a fixed set and records it, as TeamPool does with a
// team's best tier (and Gang with a member's planned nodes); nil narrows nothing.
type tierStandIn struct{ nodes sets.Set[string] }

const tierStandInName = "TierStandIn"

func (p *tierStandIn) Name() string { return tierStandInName }

func (p *tierStandIn) PreFilter(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if p.nodes == nil {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	narrowing.Record(state, p.nodes)
	return &fwk.PreFilterResult{NodeNames: p.nodes}, nil
}

func (p *tierStandIn) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// packingHarness is a framework with NodeResourcesFit, the tier stand-in and GPUAffinity in
// the shipped order (GPUAffinity's PreFilter last, its PostFilter first), GPUAffinity's index
// fed by a node informer.
type packingHarness struct {
	ctx   context.Context
	fh    framework.Framework
	pl    *GPUAffinity
	tier  *tierStandIn
	nodes []fwk.NodeInfo
}

func newPackingHarness(t testing.TB, nodes []*v1.Node, pods []*v1.Pod) *packingHarness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	h := &packingHarness{ctx: ctx, tier: &tierStandIn{}}
	registry := plugins.NewInTreeRegistry()
	if err := registry.Register(Name, func(ctx context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		p, err := New(ctx, testArgs(t, nil), fh)
		if err == nil {
			h.pl = p.(*GPUAffinity)
		}
		return p, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := registry.Register(tierStandInName, func(context.Context, runtime.Object, fwk.Handle) (fwk.Plugin, error) {
		return h.tier, nil
	}); err != nil {
		t.Fatal(err)
	}
	enabled := func(names ...string) schedconfig.PluginSet {
		var s schedconfig.PluginSet
		for _, n := range names {
			s.Enabled = append(s.Enabled, schedconfig.Plugin{Name: n})
		}
		return s
	}
	profile := &schedconfig.KubeSchedulerProfile{
		SchedulerName: "workbench-scheduler",
		Plugins: &schedconfig.Plugins{
			QueueSort:  enabled(names.PrioritySort),
			PreFilter:  enabled(names.NodeResourcesFit, tierStandInName, Name),
			Filter:     enabled(Name, names.NodeResourcesFit),
			PostFilter: enabled(Name),
			PreScore:   enabled(Name, names.NodeResourcesFit),
			Score: schedconfig.PluginSet{Enabled: []schedconfig.Plugin{
				{Name: Name, Weight: 5}, {Name: names.NodeResourcesFit, Weight: 1}}},
			Bind: enabled(names.DefaultBinder),
		},
		PluginConfig: []schedconfig.PluginConfig{
			{Name: names.NodeResourcesFit, Args: &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
				Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}}}},
		},
	}
	fh, err := frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithSnapshotSharedLister(cache.NewSnapshot(pods, nodes)),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithEventRecorder(events.NewFakeRecorder(100)),
		frameworkruntime.WithPodActivator(queue.NewTestQueue(ctx, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.fh = fh
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for i := 0; !h.pl.index.synced(); i++ {
		if i == 500 {
			t.Fatal("the GPU node index did not sync")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h.nodes, err = fh.SnapshotSharedLister().NodeInfos().List(); err != nil {
		t.Fatal(err)
	}
	return h
}

// numFeasibleNodesToFind is upstream's (schedule_one.go, v1.37.2) with the adaptive percentage.
func numFeasibleNodesToFind(n int) int {
	if n < minFeasibleNodesToFind {
		return n
	}
	pct := max(50-n/125, 5)
	return max(n*pct/100, minFeasibleNodesToFind)
}

// cycle is one scheduling cycle as schedule_one.go runs it: PreFilter, Filter from start until
// numFeasibleNodesToFind nodes passed (over the PreFilterResult's nodes when there is one),
// PostFilter when none passed, then Score and the best total.
type cycle struct {
	Narrowed   int // nodes in the PreFilterResult; 0 for every node
	Considered []string
	Chosen     string
	Status     string // of PreFilter or PostFilter, when the pod did not fit
}

func (h *packingHarness) schedule(t *testing.T, pod *v1.Pod, start int) cycle {
	t.Helper()
	state := framework.NewCycleState()
	res, s, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	if !s.IsSuccess() {
		return cycle{Status: s.Code().String() + ": " + s.Message()}
	}
	var c cycle
	nodes := h.nodes
	if !res.AllNodes() {
		c.Narrowed = res.NodeNames.Len()
		nodes = slices.DeleteFunc(slices.Clone(nodes), func(ni fwk.NodeInfo) bool { return !res.NodeNames.Has(ni.Node().Name) })
	}
	want := numFeasibleNodesToFind(len(nodes))
	var feasible []fwk.NodeInfo
	for i := 0; i < len(nodes) && len(feasible) < want; i++ {
		ni := nodes[(start+i)%len(nodes)]
		if h.fh.RunFilterPlugins(h.ctx, state, pod, ni).IsSuccess() {
			feasible = append(feasible, ni)
			c.Considered = append(c.Considered, ni.Node().Name)
		}
	}
	if len(feasible) == 0 {
		_, ps := h.fh.RunPostFilterPlugins(h.ctx, state, pod, framework.NewDefaultNodeToStatus())
		c.Status = ps.Code().String() + ": " + ps.Message()
		return c
	}
	if s := h.fh.RunPreScorePlugins(h.ctx, state, pod, feasible); !s.IsSuccess() {
		t.Fatal(s.AsError())
	}
	scores, ss := h.fh.RunScorePlugins(h.ctx, state, pod, feasible)
	if !ss.IsSuccess() {
		t.Fatal(ss.AsError())
	}
	best := scores[0]
	for _, sc := range scores[1:] {
		if sc.TotalScore > best.TotalScore {
			best = sc
		}
	}
	c.Chosen = best.Name
	return c
}

func (h *packingHarness) index(name string) int {
	return slices.IndexFunc(h.nodes, func(ni fwk.NodeInfo) bool { return ni.Node().Name == name })
}

// packingCluster is 500 A100 nodes of 8 GPUs, above the sampling floor, each with used[i] GPUs
// taken (default 2), and nodes named a100-000...
func packingCluster(used map[int]int64, extra ...*v1.Node) ([]*v1.Node, []*v1.Pod) {
	var nodes []*v1.Node
	var pods []*v1.Pod
	for i := range 500 {
		name := fmt.Sprintf("a100-%03d", i)
		nodes = append(nodes, gpuNode(name, a100, "81920", 8))
		n, ok := used[i]
		if !ok {
			n = 2
		}
		if n > 0 {
			pods = append(pods, st.MakePod().Namespace("ml").Name("run-"+name).UID("run-"+name).Node(name).
				Req(map[v1.ResourceName]string{gpu: fmt.Sprint(n)}).Obj())
		}
	}
	return append(nodes, extra...), pods
}

// A one-GPU session at 500 GPU nodes: upstream samples 230 feasible nodes from a rotating start
// and misses the one nearly full node behind the window; narrowed to the 99 best-packed nodes,
// the cycle scores every one of them and packs the session there.
func TestNearlyFullNodeOutsideTheSamplingWindowIsChosen(t *testing.T) {
	nodes, pods := packingCluster(map[int]int64{100: 7, 200: 6, 300: 6, 400: 8})
	h := newPackingHarness(t, nodes, pods)
	target := "a100-100"
	// Upstream's window: start right after the target, so it is the last node reached.
	start := (h.index(target) + 1) % len(h.nodes)
	window := sets.New[string]()
	for i := range numFeasibleNodesToFind(len(h.nodes)) {
		window.Insert(h.nodes[(start+i)%len(h.nodes)].Node().Name)
	}
	if window.Has(target) {
		t.Fatalf("test setup: %s is inside the sampling window", target)
	}

	state := framework.NewCycleState()
	res, s := h.pl.PreFilter(h.ctx, state, gpuPod("session", "1").Obj(), h.nodes)
	if !s.IsSuccess() || res.AllNodes() {
		t.Fatalf("PreFilter = %v, %v; want a narrowing", res, s)
	}
	if got := res.NodeNames.Len(); got != maxPackingCandidates {
		t.Errorf("narrowed to %d nodes, want %d", got, maxPackingCandidates)
	}
	// The best-packed nodes that can hold one GPU: 7 used, then 6 used; the full node cannot.
	for _, name := range []string{"a100-100", "a100-200", "a100-300"} {
		if !res.NodeNames.Has(name) {
			t.Errorf("PreFilterResult lacks %s", name)
		}
	}
	if res.NodeNames.Has("a100-400") {
		t.Error("PreFilterResult holds the full node a100-400")
	}

	got := h.schedule(t, gpuPod("session", "1").Obj(), start)
	if got.Chosen != target || len(got.Considered) != maxPackingCandidates {
		t.Errorf("chose %s after considering %d nodes; want %s among %d", got.Chosen, len(got.Considered), target, maxPackingCandidates)
	}
}

func TestPreFilterNarrowing(t *testing.T) {
	allFree := map[int]int64{}
	for i := range 500 {
		allFree[i] = 0
	}
	tier := func(from, to int) sets.Set[string] {
		s := sets.New[string]()
		for i := from; i < to; i++ {
			s.Insert(fmt.Sprintf("a100-%03d", i))
		}
		return s
	}
	t4s := []*v1.Node{gpuNode("t4-1", "Tesla-T4", "15360", 4), gpuNode("t4-2", "Tesla-T4", "15360", 4)}
	h100 := gpuNode("h100-1", "NVIDIA-H100-80GB-HBM3", "81920", 8)
	cpu := gpuNode("cpu-1", "", "", 0)
	tests := []struct {
		name string
		used map[int]int64
		tier sets.Set[string]
		pod  *v1.Pod
		prep func(*packingHarness, *framework.CycleState)
		// want lists nodes the result must hold; wantLen is its size, -1 for every node.
		want    []string
		wantLen int
		outcome string
	}{{
		name: "a model the pod names: only its nodes, below the floor, every one",
		pod:  withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "t4"), want: []string{"t4-1", "t4-2"}, wantLen: 2, outcome: narrowingNarrowed,
	}, {
		name: "a generic pod never gets a special SKU nor a CPU node",
		used: map[int]int64{7: 6}, pod: gpuPod("p", "2").Obj(), want: []string{"a100-007"}, wantLen: maxPackingCandidates, outcome: narrowingNarrowed,
	}, {
		name: "the whole node it needs: only idle nodes can hold 8 GPUs",
		used: map[int]int64{3: 0, 9: 0}, pod: gpuPod("p", "8").Obj(), want: []string{"a100-003", "a100-009"}, wantLen: 2, outcome: narrowingNarrowed,
	}, {
		name: "no node has room: every node, so that preemption may look at each",
		used: map[int]int64{}, pod: gpuPod("p", "8").Obj(), wantLen: -1, outcome: narrowingNoRoom,
	}, {
		name: "within a tier of 150 nodes, the tier's best-packed ones",
		used: map[int]int64{1: 7, 260: 5}, tier: tier(200, 350), pod: gpuPod("p", "1").Obj(),
		want: []string{"a100-260"}, wantLen: maxPackingCandidates, outcome: narrowingNarrowed,
	}, {
		name: "a tier below the sampling floor is not narrowed further",
		tier: tier(200, 260), pod: gpuPod("p", "1").Obj(), wantLen: 60, outcome: narrowingSmallSet,
	}, {
		name: "a tier where no node has room is left to the tier",
		used: map[int]int64{}, tier: tier(100, 400), pod: gpuPod("p", "8").Obj(), wantLen: 300, outcome: narrowingNoRoom,
	}, {
		name: "gang planning over every tier is not narrowed",
		pod:  gpuPod("p", "1").Obj(), prep: func(_ *packingHarness, s *framework.CycleState) { tierhint.SetAllTiers(s) },
		wantLen: -1, outcome: narrowingSkipped,
	}, {
		name:    "node-name affinity is left to NodeAffinity",
		pod:     gpuPod("p", "1").NodeAffinityIn(metav1.ObjectNameField, []string{"a100-001"}, st.NodeSelectorTypeMatchFields).Obj(),
		wantLen: -1, outcome: narrowingSkipped,
	}, {
		name: "a pod whose narrowed cycle failed is scheduled over every node",
		pod:  gpuPod("wide", "1").UID("wide").Obj(), prep: func(h *packingHarness, _ *framework.CycleState) { h.pl.rememberWide("wide", time.Now()) },
		wantLen: -1, outcome: narrowingWide,
	}, {
		name: "a CPU pod: no narrowing",
		pod:  cpuPod("notebook").Obj(), wantLen: -1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			used := tc.used
			if used == nil {
				used = allFree
			}
			nodes, pods := packingCluster(used, append(slices.Clone(t4s), h100, cpu)...)
			h := newPackingHarness(t, nodes, pods)
			h.tier.nodes = tc.tier
			state := framework.NewCycleState()
			if tc.prep != nil {
				tc.prep(h, state)
			}
			before := narrowingCounts(t)
			res, s, _ := h.fh.RunPreFilterPlugins(h.ctx, state, tc.pod)
			if !s.IsSuccess() {
				t.Fatalf("PreFilter: %v", s)
			}
			gotLen := -1
			if !res.AllNodes() {
				gotLen = res.NodeNames.Len()
			}
			if gotLen != tc.wantLen {
				t.Errorf("narrowed to %d nodes, want %d", gotLen, tc.wantLen)
			}
			for _, n := range tc.want {
				if !res.NodeNames.Has(n) {
					t.Errorf("result lacks %s", n)
				}
			}
			if !res.AllNodes() {
				for _, never := range []string{"h100-1", "cpu-1"} {
					if res.NodeNames.Has(never) && tc.pod.Annotations[ModelAnnotation] == "" {
						t.Errorf("result holds %s", never)
					}
				}
				if tc.tier != nil && !tc.tier.IsSuperset(res.NodeNames) {
					t.Errorf("result leaves the tier: %v", sets.List(res.NodeNames.Difference(tc.tier)))
				}
			}
			diff := map[string]float64{}
			for k, v := range narrowingCounts(t) {
				if d := v - before[k]; d != 0 {
					diff[k] = d
				}
			}
			want := map[string]float64{}
			if tc.outcome != "" {
				want[tc.outcome] = 1
			}
			if d := cmp.Diff(want, diff); d != "" {
				t.Errorf("narrowing outcomes (-want +got):\n%s", d)
			}
		})
	}
}

func narrowingCounts(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, o := range []string{narrowingNarrowed, narrowingNoRoom, narrowingSmallSet, narrowingSkipped, narrowingWide, narrowingFallback} {
		v, err := testutil.GetCounterMetricValue(narrowings.WithLabelValues(o))
		if err != nil {
			t.Fatal(err)
		}
		out[o] = v
	}
	return out
}

// The best-packed nodes can all fail another filter (here their CPUs are taken): the cycle
// fails, PostFilter ends it without preemption and retries the pod over every node, where it
// fits. A pod that fits somewhere is never turned away by the narrowing.
func TestNarrowedCycleThatFailsIsRetriedOverEveryNode(t *testing.T) {
	used := map[int]int64{}
	for i := range 500 {
		used[i] = 0
	}
	var hogs []*v1.Pod
	for i := range maxPackingCandidates {
		used[i] = 4
		name := fmt.Sprintf("a100-%03d", i)
		hogs = append(hogs, st.MakePod().Namespace("ml").Name("hog-"+name).Node(name).Req(map[v1.ResourceName]string{"cpu": "64"}).Obj())
	}
	nodes, pods := packingCluster(used)
	h := newPackingHarness(t, nodes, append(pods, hogs...))
	pod := gpuPod("session", "1").UID("session").Obj()

	first := h.schedule(t, pod, 0)
	want := cycle{Narrowed: maxPackingCandidates,
		Status: "UnschedulableAndUnresolvable: none of the 99 best-packed GPU nodes that can hold the pod passed the filters; retrying over every node"}
	if d := cmp.Diff(want, first); d != "" {
		t.Fatalf("first cycle (-want +got):\n%s", d)
	}
	second := h.schedule(t, pod, 0)
	if second.Narrowed != 0 || second.Chosen == "" {
		t.Fatalf("second cycle = %+v; want every node and a placement", second)
	}
	var i int
	if _, err := fmt.Sscanf(second.Chosen, "a100-%d", &i); err != nil || used[i] != 0 {
		t.Errorf("placed on %s, want an idle node (the others have no CPU)", second.Chosen)
	}
}

// A tier of 150 nodes whose best-packed ones are not among the cluster's 99 best: the
// intersection of the two narrowings is never empty, and the pod lands in the tier.
func TestNarrowingWithinATierDoesNotRejectThePod(t *testing.T) {
	used := map[int]int64{}
	for i := range 150 {
		used[i] = 7 // the cluster's best-packed nodes, outside the tier
	}
	nodes, pods := packingCluster(used)
	h := newPackingHarness(t, nodes, pods)
	h.tier.nodes = sets.New[string]()
	for i := 300; i < 450; i++ {
		h.tier.nodes.Insert(fmt.Sprintf("a100-%03d", i))
	}
	got := h.schedule(t, gpuPod("session", "1").Obj(), 0)
	if got.Narrowed != maxPackingCandidates || !h.tier.nodes.Has(got.Chosen) {
		t.Errorf("cycle = narrowed to %d, chose %q, status %q; want %d nodes of the tier and one of them chosen",
			got.Narrowed, got.Chosen, got.Status, maxPackingCandidates)
	}
}

// The index follows node events: a node that gains GPUs is a candidate, one whose device plugin
// is down (0 allocatable) or that is deleted is not.
func TestIndexFollowsNodeEvents(t *testing.T) {
	x := &gpuNodeIndex{classes: newGPUClasses([]string{"nvidia.com/gpu"}), productLabel: "nvidia.com/gpu.product",
		nodes: map[v1.ResourceName]map[string]sets.Set[string]{}}
	listed := func() map[string][]string {
		out := map[string][]string{}
		for product, names := range x.nodes[gpu] {
			out[product] = sets.List(names)
		}
		return out
	}
	a := gpuNode("a", a100, "81920", 8)
	b := gpuNode("b", "", "", 4)
	x.update(nil, a)
	x.update(nil, b)
	x.update(nil, gpuNode("cpu", "", "", 0))
	if d := cmp.Diff(map[string][]string{"nvidia-a100-sxm4-80gb": {"a"}, "": {"b"}}, listed()); d != "" {
		t.Errorf("after adds (-want +got):\n%s", d)
	}
	down := a.DeepCopy()
	down.Status.Allocatable[gpu] = *resourceQuantity(0)
	x.update(a, down)
	labelled := b.DeepCopy()
	labelled.Labels = map[string]string{"nvidia.com/gpu.product": "Tesla-T4"}
	x.update(b, labelled)
	if d := cmp.Diff(map[string][]string{"tesla-t4": {"b"}}, listed()); d != "" {
		t.Errorf("after updates (-want +got):\n%s", d)
	}
	x.update(labelled, nil)
	if d := cmp.Diff(map[string][]string{}, listed()); d != "" {
		t.Errorf("after delete (-want +got):\n%s", d)
	}
}

// PreFilter's cost: a CPU pod pays only the parse; a GPU pod pays a visit to the nodes of its
// resource (1,000 GPU nodes of 5,000 here).
func BenchmarkPreFilterNarrowing(b *testing.B) {
	var nodes []*v1.Node
	var pods []*v1.Pod
	products := []string{a100, "Tesla-T4", "NVIDIA-L4", "NVIDIA-A100-SXM4-40GB"}
	for i := range 5000 {
		name := fmt.Sprintf("node-%04d", i)
		if i%5 != 0 {
			nodes = append(nodes, gpuNode(name, "", "", 0))
			continue
		}
		nodes = append(nodes, gpuNode(name, products[i%len(products)], "81920", 8))
		pods = append(pods, st.MakePod().Namespace("ml").Name("run-"+name).Node(name).Req(map[v1.ResourceName]string{gpu: fmt.Sprint(i % 8)}).Obj())
	}
	h := newPackingHarness(b, nodes, pods)
	for _, bc := range []struct {
		name string
		pod  *v1.Pod
	}{
		{"cpu pod", cpuPod("notebook").Obj()},
		{"one GPU, any model", gpuPod("session", "1").Obj()},
		{"one GPU, a100", withAnnotations(gpuPod("session", "1").Obj(), ModelAnnotation, "a100")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				h.pl.PreFilter(h.ctx, framework.NewCycleState(), bc.pod, h.nodes)
			}
		})
	}
}
