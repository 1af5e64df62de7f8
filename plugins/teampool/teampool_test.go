package teampool

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	kcache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configscheme "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	wbfake "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned/fake"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/narrowing"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

func testArgs(t testing.TB, mutate func(*configv1.TeamPoolArgs)) *config.TeamPoolArgs {
	t.Helper()
	in := &configv1.TeamPoolArgs{}
	if mutate != nil {
		mutate(in)
	}
	configscheme.Scheme.Default(in)
	out := &config.TeamPoolArgs{}
	if err := configscheme.Scheme.Convert(in, out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func resourcePool(name, owner string, lendable bool, selector map[string]string) *workbenchv1alpha1.ResourcePool {
	return &workbenchv1alpha1.ResourcePool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: workbenchv1alpha1.ResourcePoolSpec{
			Owner: owner, Lendable: lendable, NodeSelector: metav1.LabelSelector{MatchLabels: selector},
		},
	}
}

func poolNode(name, poolLabel string) *v1.Node {
	w := st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{"cpu": "4", "memory": "16Gi", "pods": "10"})
	if poolLabel != "" {
		w = w.Label("pool", poolLabel)
	}
	return w.Obj()
}

// The org: ai/applied-ml/recsys owns recsys; its ancestors own applied-ml and ai; shared is
// everyone's; ai/vision lends its pool; finance does not. free-1 is in no pool.
func orgPools() []*workbenchv1alpha1.ResourcePool {
	return []*workbenchv1alpha1.ResourcePool{
		resourcePool("recsys", "ai/applied-ml/recsys", false, map[string]string{"pool": "recsys"}),
		resourcePool("applied-ml", "ai/applied-ml", false, map[string]string{"pool": "applied-ml"}),
		resourcePool("ai", "ai", false, map[string]string{"pool": "ai"}),
		resourcePool("shared", "", false, map[string]string{"pool": "shared"}),
		resourcePool("vision", "ai/vision", true, map[string]string{"pool": "vision"}),
		resourcePool("finance", "finance", false, map[string]string{"pool": "finance"}),
	}
}

func orgNodes() []*v1.Node {
	return []*v1.Node{
		poolNode("recsys-1", "recsys"), poolNode("recsys-2", "recsys"),
		poolNode("applied-1", "applied-ml"), poolNode("ai-1", "ai"),
		poolNode("shared-1", "shared"), poolNode("vision-1", "vision"),
		poolNode("finance-1", "finance"), poolNode("free-1", ""),
	}
}

// fill is a running pod that takes every CPU of a node.
func fill(node string) *v1.Pod {
	return st.MakePod().Namespace("other").Name("fill-" + node).UID("fill-" + node).Node(node).
		Req(map[v1.ResourceName]string{"cpu": "4"}).Obj()
}

type harness struct {
	pl       *TeamPool
	recorder *events.FakeRecorder
	nodes    []fwk.NodeInfo
}

type cluster struct {
	pools      []*workbenchv1alpha1.ResourcePool
	nodes      []*v1.Node
	pods       []*v1.Pod
	namespaces []*v1.Namespace
}

func newHarness(t *testing.T, c cluster, args *config.TeamPoolArgs) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	var objs []runtime.Object
	for _, n := range c.nodes {
		objs = append(objs, n)
	}
	for _, p := range c.pods {
		objs = append(objs, p)
	}
	for _, ns := range c.namespaces {
		objs = append(objs, ns)
	}
	var poolObjs []runtime.Object
	for _, p := range c.pools {
		poolObjs = append(poolObjs, p)
	}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := events.NewFakeRecorder(100)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(cache.NewSnapshot(c.pods, c.nodes)),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithEventRecorder(recorder),
		frameworkruntime.WithPodActivator(queue.NewTestQueue(ctx, nil)))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := newPlugin(ctx, args, fh, wbfake.NewSimpleClientset(poolObjs...))
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if !kcache.WaitForCacheSync(ctx.Done(), pl.synced) {
		t.Fatal("the index did not sync")
	}
	infos, err := fh.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	return &harness{pl: pl, recorder: recorder, nodes: infos}
}

// outcome runs PreFilter, then Filter and Score on the nodes PreFilter left, and describes the
// result: the candidate nodes by descending score, and the rejected ones with their reasons.
type outcome struct {
	PreFilter string
	Ranked    []string
	Rejected  map[string]string
}

func (h *harness) run(t *testing.T, pod *v1.Pod) outcome {
	t.Helper()
	ctx := context.Background()
	state := framework.NewCycleState()
	res, s := h.pl.PreFilter(ctx, state, pod, h.nodes)
	if !s.IsSuccess() {
		return outcome{PreFilter: s.Code().String() + ": " + s.Message()}
	}
	// Plugins later in the chain (GPUAffinity) narrow within what TeamPool narrowed to: it must
	// record exactly the set it returns.
	recorded := narrowing.Read(state)
	if res.AllNodes() != (recorded == nil) {
		t.Fatalf("PreFilter narrowed: %v; recorded a narrowing: %v", !res.AllNodes(), recorded != nil)
	}
	for _, ni := range h.nodes {
		if name := ni.Node().Name; !res.AllNodes() && res.NodeNames.Has(name) != recorded.Has(name) {
			t.Fatalf("node %s: in the PreFilterResult %v, recorded %v", name, res.NodeNames.Has(name), recorded.Has(name))
		}
	}
	out := outcome{Rejected: map[string]string{}}
	var feasible []fwk.NodeInfo
	for _, ni := range h.nodes {
		if !res.AllNodes() && !res.NodeNames.Has(ni.Node().Name) {
			continue
		}
		if s := h.pl.Filter(ctx, state, pod, ni); !s.IsSuccess() {
			out.Rejected[ni.Node().Name] = s.Message()
			continue
		}
		feasible = append(feasible, ni)
	}
	if len(out.Rejected) == 0 {
		out.Rejected = nil
	}
	if s := h.pl.PreScore(ctx, state, pod, feasible); !s.IsSuccess() {
		t.Fatalf("PreScore: %v", s)
	}
	scores := map[string]int64{}
	for _, ni := range feasible {
		score, s := h.pl.Score(ctx, state, pod, ni)
		if !s.IsSuccess() {
			t.Fatalf("Score: %v", s)
		}
		if score < 0 || score > fwk.MaxNodeScore {
			t.Fatalf("score %d of %s out of range", score, ni.Node().Name)
		}
		scores[ni.Node().Name] = score
		out.Ranked = append(out.Ranked, ni.Node().Name)
	}
	sort.SliceStable(out.Ranked, func(i, j int) bool {
		a, b := out.Ranked[i], out.Ranked[j]
		if scores[a] != scores[b] {
			return scores[a] > scores[b]
		}
		return a < b
	})
	return out
}

func teamPod(name, team string) *v1.Pod {
	w := st.MakePod().Namespace("ds").Name(name).UID(name).Req(map[v1.ResourceName]string{"cpu": "1"})
	if team != "" {
		w = w.Label(TeamLabel, team)
	}
	return w.Obj()
}

func TestTiers(t *testing.T) {
	recsys := "ai.applied-ml.recsys"
	tests := []struct {
		name     string
		args     func(*configv1.TeamPoolArgs)
		running  []*v1.Pod
		pod      *v1.Pod
		nsLabels map[string]string
		want     outcome
	}{
		{
			name: "own team's pool first",
			pod:  teamPod("p", recsys),
			want: outcome{Ranked: []string{"recsys-1", "recsys-2"}},
		},
		{
			name:    "own pool full: nearest ancestor's pool",
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2")},
			pod:     teamPod("p", recsys),
			want:    outcome{Ranked: []string{"applied-1"}},
		},
		{
			name:    "own and parent full: the grandparent's pool",
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2"), fill("applied-1")},
			pod:     teamPod("p", recsys),
			want:    outcome{Ranked: []string{"ai-1"}},
		},
		{
			name:    "every ancestor full: shared pools and nodes in no pool",
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2"), fill("applied-1"), fill("ai-1")},
			pod:     teamPod("p", recsys),
			want:    outcome{Ranked: []string{"free-1", "shared-1"}},
		},
		{
			name:    "nodes in no pool rank last when configured",
			args:    func(a *configv1.TeamPoolArgs) { a.UnpooledNodes = "Last" },
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2"), fill("applied-1"), fill("ai-1")},
			pod:     teamPod("p", recsys),
			want:    outcome{Ranked: []string{"shared-1"}},
		},
		{
			name:    "shared full too: another team's lendable pool",
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2"), fill("applied-1"), fill("ai-1"), fill("shared-1"), fill("free-1")},
			pod:     teamPod("p", recsys),
			want:    outcome{Ranked: []string{"vision-1"}},
		},
		{
			name: "no tier has room: every node the team may use, ranked, and the closed pool refused",
			running: []*v1.Pod{fill("recsys-1"), fill("recsys-2"), fill("applied-1"), fill("ai-1"), fill("shared-1"),
				fill("free-1"), fill("vision-1")},
			pod: teamPod("p", recsys),
			want: outcome{
				Ranked:   []string{"recsys-1", "recsys-2", "applied-1", "ai-1", "free-1", "shared-1", "vision-1"},
				Rejected: map[string]string{"finance-1": "node is in pool finance of team finance, which does not lend it to team ai/applied-ml/recsys"},
			},
		},
		{
			name: "a required node affinity outside the own pool moves on to the tier it allows",
			pod: st.MakePod().Namespace("ds").Name("p").UID("p").Label(TeamLabel, recsys).
				Req(map[v1.ResourceName]string{"cpu": "1"}).NodeAffinityIn("pool", []string{"shared", "ai"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			want: outcome{Ranked: []string{"ai-1"}},
		},
		{
			name:     "the team comes from the namespace when the pod has none",
			pod:      teamPod("p", ""),
			nsLabels: map[string]string{TeamLabel: "ai.applied-ml"},
			want:     outcome{Ranked: []string{"applied-1"}},
		},
		{
			name:     "the pod's label wins over its namespace's",
			pod:      teamPod("p", "ai"),
			nsLabels: map[string]string{TeamLabel: "finance"},
			want:     outcome{Ranked: []string{"ai-1"}},
		},
		{
			name: "a team-less pod: shared pools and nodes in no pool",
			pod:  teamPod("p", ""),
			want: outcome{Ranked: []string{"free-1", "shared-1"}},
		},
		{
			name:    "a team-less pod may borrow a lendable pool, never a closed one",
			running: []*v1.Pod{fill("shared-1"), fill("free-1")},
			pod:     teamPod("p", ""),
			want:    outcome{Ranked: []string{"vision-1"}},
		},
		{
			name: "a child team may not use its parent's sibling's closed pool but may use the root's",
			pod:  teamPod("p", "ai.vision"),
			want: outcome{Ranked: []string{"vision-1"}},
		},
		{
			name: "a malformed team label makes the pod unschedulable, naming the label and value",
			pod:  teamPod("p", "AI_team"),
			want: outcome{PreFilter: `UnschedulableAndUnresolvable: pod label workbench.dev/team="AI_team" is not a team path (DNS labels joined by ".", e.g. ai.applied-ml.recsys): segment "AI_team": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		},
		{
			name:     "a malformed namespace team label names the namespace",
			pod:      teamPod("p", ""),
			nsLabels: map[string]string{TeamLabel: "ai..ml"},
			want:     outcome{PreFilter: `UnschedulableAndUnresolvable: namespace ds label workbench.dev/team="ai..ml" is not a team path (DNS labels joined by ".", e.g. ai.applied-ml.recsys): segment "": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ds", Labels: tc.nsLabels}}
			h := newHarness(t, cluster{pools: orgPools(), nodes: orgNodes(), pods: tc.running, namespaces: []*v1.Namespace{ns}}, testArgs(t, tc.args))
			got := h.run(t, tc.pod)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if strings.HasPrefix(tc.want.PreFilter, "UnschedulableAndUnresolvable: ") {
				select {
				case e := <-h.recorder.Events:
					if !strings.Contains(e, EventReasonInvalidTeam) || !strings.Contains(e, TeamLabel) {
						t.Errorf("event %q, want %s naming the label", e, EventReasonInvalidTeam)
					}
				default:
					t.Errorf("no %s event recorded", EventReasonInvalidTeam)
				}
			}
		})
	}
}

// Within a tier the pool with the most of the pod's dominant resource free ranks first.
func TestAvailabilityWithinTier(t *testing.T) {
	pools := []*workbenchv1alpha1.ResourcePool{
		resourcePool("shared-a", "", false, map[string]string{"pool": "a"}),
		resourcePool("shared-b", "", false, map[string]string{"pool": "b"}),
	}
	nodes := []*v1.Node{poolNode("a-1", "a"), poolNode("a-2", "a"), poolNode("b-1", "b"), poolNode("b-2", "b")}
	// a has 6 of 8 CPUs free and 2 of 32Gi memory; b has 2 CPUs and 30Gi.
	running := []*v1.Pod{
		st.MakePod().Namespace("x").Name("a").UID("a").Node("a-1").Req(map[v1.ResourceName]string{"cpu": "2", "memory": "15Gi"}).Obj(),
		st.MakePod().Namespace("x").Name("a2").UID("a2").Node("a-2").Req(map[v1.ResourceName]string{"memory": "15Gi"}).Obj(),
		st.MakePod().Namespace("x").Name("b").UID("b").Node("b-1").Req(map[v1.ResourceName]string{"cpu": "3", "memory": "1Gi"}).Obj(),
		st.MakePod().Namespace("x").Name("b2").UID("b2").Node("b-2").Req(map[v1.ResourceName]string{"cpu": "3", "memory": "1Gi"}).Obj(),
	}
	h := newHarness(t, cluster{pools: pools, nodes: nodes, pods: running}, testArgs(t, nil))
	cpuHeavy := st.MakePod().Namespace("ds").Name("cpu").UID("cpu").Req(map[v1.ResourceName]string{"cpu": "1", "memory": "100Mi"}).Obj()
	if got := h.run(t, cpuHeavy).Ranked; got[0] != "a-1" && got[0] != "a-2" {
		t.Errorf("CPU-dominant pod ranked %v, want pool a (most CPU free) first", got)
	}
	memHeavy := st.MakePod().Namespace("ds").Name("mem").UID("mem").Req(map[v1.ResourceName]string{"cpu": "100m", "memory": "1Gi"}).Obj()
	if got := h.run(t, memHeavy).Ranked; got[0] != "b-1" && got[0] != "b-2" {
		t.Errorf("memory-dominant pod ranked %v, want pool b (most memory free) first", got)
	}
}

// When every node of the best tier fails another filter, PostFilter sends the next attempt to
// the next tier.
func TestFallbackToNextTier(t *testing.T) {
	h := newHarness(t, cluster{pools: orgPools(), nodes: orgNodes()}, testArgs(t, nil))
	pod := teamPod("p", "ai.applied-ml.recsys")
	state := framework.NewCycleState()
	res, s := h.pl.PreFilter(context.Background(), state, pod, h.nodes)
	if !s.IsSuccess() || !res.NodeNames.Equal(sets.New("recsys-1", "recsys-2")) {
		t.Fatalf("first attempt: %v %v, want recsys nodes", res, s)
	}
	// UnschedulableAndUnresolvable ends the PostFilter chain: no preemption in this tier.
	if _, s := h.pl.PostFilter(context.Background(), state, pod, nil); s.Code() != fwk.UnschedulableAndUnresolvable {
		t.Fatalf("PostFilter: %v, want UnschedulableAndUnresolvable", s)
	}
	if got := h.run(t, pod).Ranked; !cmp.Equal(got, []string{"applied-1"}) {
		t.Errorf("second attempt ranked %v, want the parent's pool", got)
	}
	h.pl.forgetFallback(pod.UID)
	if got := h.run(t, pod).Ranked; !cmp.Equal(got, []string{"recsys-1", "recsys-2"}) {
		t.Errorf("after the pod is forgotten, ranked %v, want its own pool", got)
	}
}

func TestNoPoolsSkips(t *testing.T) {
	h := newHarness(t, cluster{nodes: orgNodes()}, testArgs(t, nil))
	_, s := h.pl.PreFilter(context.Background(), framework.NewCycleState(), teamPod("p", "ai"), h.nodes)
	if !s.IsSkip() {
		t.Errorf("PreFilter without pools = %v, want Skip", s)
	}
}

func TestIndex(t *testing.T) {
	gpu := v1.ResourceName("nvidia.com/gpu")
	idx := newPoolIndex([]v1.ResourceName{gpu})
	broad := resourcePool("broad", "ai", false, map[string]string{"zone": "a"})
	narrow := resourcePool("narrow", "ai/ml", false, map[string]string{"zone": "a", "gpu": "yes"})
	tie := resourcePool("a-tie", "x", false, map[string]string{"zone": "a", "rack": "1"})
	idx.setPool(broad)
	idx.setPool(narrow)
	n1 := st.MakeNode().Name("n1").Label("zone", "a").Capacity(map[v1.ResourceName]string{"cpu": "8", "memory": "32Gi", gpu: "4"}).Obj()
	n2 := st.MakeNode().Name("n2").Label("zone", "a").Label("gpu", "yes").Label("rack", "1").Capacity(map[v1.ResourceName]string{"cpu": "8", "memory": "32Gi"}).Obj()
	// A pod seen before its node.
	p1 := st.MakePod().Namespace("x").Name("p1").UID("p1").Node("n1").Req(map[v1.ResourceName]string{"cpu": "2", gpu: "1"}).Obj()
	idx.updatePod(nil, p1)
	idx.setNode(n1)
	idx.setNode(n2)
	idx.setPool(tie)

	describe := func() map[string]string {
		pools, unpooled := idx.summaries()
		out := map[string]string{}
		for _, ps := range append(pools, unpooled) {
			out[ps.pool.name] = fmt.Sprintf("nodes=%v cap=%+v alloc=%+v overlap=%d", sets.List(ps.nodes), ps.capacity, ps.allocated, ps.overlapping)
		}
		return out
	}
	want := map[string]string{
		// n2 matches all three; narrow and a-tie both have 2 requirements, a-tie wins by name.
		"a-tie":  "nodes=[n2] cap={milliCPU:8000 memory:34359738368 gpu:0} alloc={milliCPU:0 memory:0 gpu:0} overlap=1",
		"broad":  "nodes=[n1] cap={milliCPU:8000 memory:34359738368 gpu:4} alloc={milliCPU:2000 memory:0 gpu:1} overlap=1",
		"narrow": "nodes=[] cap={milliCPU:0 memory:0 gpu:0} alloc={milliCPU:0 memory:0 gpu:0} overlap=1",
		"":       "nodes=[] cap={milliCPU:0 memory:0 gpu:0} alloc={milliCPU:0 memory:0 gpu:0} overlap=0",
	}
	if diff := cmp.Diff(want, describe()); diff != "" {
		t.Errorf("after setup (-want +got):\n%s", diff)
	}

	// The pod finishes, n1 is relabelled out of every pool, a-tie goes away.
	done := p1.DeepCopy()
	done.Status.Phase = v1.PodSucceeded
	idx.updatePod(p1, done)
	relabelled := n1.DeepCopy()
	relabelled.Labels = map[string]string{"zone": "b"}
	idx.setNode(relabelled)
	idx.deletePool("a-tie")
	want = map[string]string{
		"broad":  "nodes=[] cap={milliCPU:0 memory:0 gpu:0} alloc={milliCPU:0 memory:0 gpu:0} overlap=1",
		"narrow": "nodes=[n2] cap={milliCPU:8000 memory:34359738368 gpu:0} alloc={milliCPU:0 memory:0 gpu:0} overlap=1",
		"":       "nodes=[n1] cap={milliCPU:8000 memory:34359738368 gpu:4} alloc={milliCPU:0 memory:0 gpu:0} overlap=0",
	}
	if diff := cmp.Diff(want, describe()); diff != "" {
		t.Errorf("after changes (-want +got):\n%s", diff)
	}
	idx.deleteNode("n2")
	if p := idx.poolOf("n2"); p != nil {
		t.Errorf("deleted node still in pool %s", p.name)
	}
}

// A pool that slipped past the CRD's validation is ignored, with the reason in its status.
func TestInvalidPool(t *testing.T) {
	bad := resourcePool("bad", "ai", false, nil)
	bad.Spec.NodeSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "pool", Operator: "Near", Values: []string{"x"}}}
	h := newHarness(t, cluster{pools: []*workbenchv1alpha1.ResourcePool{bad, resourcePool("shared", "", false, map[string]string{"pool": "shared"})}, nodes: orgNodes()}, testArgs(t, nil))
	// Only "shared" counts: the other nodes' pool labels name no valid pool, so they are unpooled.
	if got := h.run(t, teamPod("p", "")); len(got.Ranked) != len(orgNodes()) || got.Rejected != nil {
		t.Errorf("outcome %+v, want every node usable", got)
	}
	select {
	case e := <-h.recorder.Events:
		if !strings.Contains(e, EventReasonInvalidPool) || !strings.Contains(e, `"Near" is not a valid label selector operator`) {
			t.Errorf("event %q", e)
		}
	case <-time.After(5 * time.Second):
		t.Error("no event for the invalid pool")
	}
	pools, _ := h.pl.index.summaries()
	for _, ps := range pools {
		if ps.pool.name != "bad" {
			continue
		}
		st := poolStatus(bad, ps)
		if c := st.Conditions[0]; c.Type != workbenchv1alpha1.ConditionReady || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.nodeSelector") {
			t.Errorf("Ready condition %+v, want False naming spec.nodeSelector", c)
		}
	}
}

func TestArgsValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*configv1.TeamPoolArgs)
		want   string
	}{
		{name: "defaults are valid"},
		{name: "unknown unpooled tier", mutate: func(a *configv1.TeamPoolArgs) { a.UnpooledNodes = "First" },
			want: `args.unpooledNodes: Unsupported value: "First"`},
		{name: "GPU name not extended", mutate: func(a *configv1.TeamPoolArgs) { a.GPUResourceNames = []string{"gpu"} },
			want: `args.gpuResourceNames[0]: Invalid value: "gpu"`},
		{name: "interval too short", mutate: func(a *configv1.TeamPoolArgs) { a.StatusUpdateInterval = &metav1.Duration{Duration: time.Millisecond} },
			want: `args.statusUpdateInterval: Invalid value: "1ms": must be at least 1s`},
		{name: "lease without namespace", mutate: func(a *configv1.TeamPoolArgs) { a.LeaderLease = "lease" },
			want: `args.leaderLease: Invalid value: "lease"`},
		{name: "no lease", mutate: func(a *configv1.TeamPoolArgs) { a.LeaderLease = "-" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			fh, err := frameworkruntime.NewFramework(ctx, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(ctx, testArgs(t, tc.mutate), fh)
			switch {
			case tc.want == "" && err != nil && strings.Contains(err.Error(), "args."):
				t.Errorf("unexpected validation error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestHolds(t *testing.T) {
	now := time.Now()
	holder := func(id string, renewed time.Duration) *coordinationLease {
		return newLease(id, now.Add(-renewed), 15)
	}
	tests := []struct {
		name  string
		lease *coordinationLease
		want  bool
	}{
		{"ours and fresh", holder("host-a_1234", time.Second), true},
		{"ours but expired", holder("host-a_1234", time.Minute), false},
		{"another host", holder("host-b_1234", time.Second), false},
		{"a host whose name starts like ours", holder("host-ab_1234", time.Second), false},
	}
	for _, tc := range tests {
		if got := holds(tc.lease, "host-a_", now); got != tc.want {
			t.Errorf("%s: holds = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func FuzzParseTeamPath(f *testing.F) {
	for _, s := range []string{"ai/applied-ml/recsys", "", "a//b", "/a", "A", "a/-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := orgtree.ParseOwner(s)
		if err != nil {
			return
		}
		if tm.String() != s {
			t.Errorf("parse(%q) = %q", s, tm.String())
		}
		if s != "" && orgtree.AncestorDistance(tm, tm) != 0 {
			t.Errorf("%q is not its own team", s)
		}
	})
}

type coordinationLease = coordinationv1.Lease

func newLease(holder string, renewed time.Time, seconds int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{
		HolderIdentity: &holder, RenewTime: &metav1.MicroTime{Time: renewed}, LeaseDurationSeconds: &seconds,
	}}
}

// A tier of several pools is cached between cycles and rebuilt when a node joins it.
func TestTierSetFollowsMembership(t *testing.T) {
	h := newHarness(t, cluster{pools: orgPools(), nodes: orgNodes()}, testArgs(t, nil))
	preFilter := func() sets.Set[string] {
		t.Helper()
		res, s := h.pl.PreFilter(context.Background(), framework.NewCycleState(), teamPod("p", ""), h.nodes)
		if !s.IsSuccess() || res.AllNodes() {
			t.Fatalf("PreFilter = %v, %v; want the shared tier", res, s)
		}
		return res.NodeNames
	}
	if got, want := preFilter(), sets.New("shared-1", "free-1"); !got.Equal(want) {
		t.Fatalf("shared tier %v, want %v", sets.List(got), sets.List(want))
	}
	h.pl.index.setNode(poolNode("free-2", ""))
	if got, want := preFilter(), sets.New("shared-1", "free-1", "free-2"); !got.Equal(want) {
		t.Errorf("after a node joined: %v, want %v", sets.List(got), sets.List(want))
	}
}
