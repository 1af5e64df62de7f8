package topologyspread

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
)

var allFeatures = feature.Features{EnableNodeInclusionPolicyInPodTopologySpread: true, EnableMatchLabelKeysInPodTopologySpread: true}

const zone = v1.LabelTopologyZone

func newTestPlugin(t *testing.T, snapshot *cache.Snapshot, args runtime.Object, clk *testingclock.FakeClock, objs ...runtime.Object) *IndexedPodTopologySpread {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	factory := informers.NewSharedInformerFactory(clientsetfake.NewClientset(objs...), 0)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(snapshot), frameworkruntime.WithInformerFactory(factory))
	if err != nil {
		t.Fatal(err)
	}
	if args == nil {
		args = &config.IndexedPodTopologySpreadArgs{DefaultingType: schedconfig.ListDefaulting}
	}
	if clk == nil {
		clk = testingclock.NewFakeClock(time.Unix(0, 0))
	}
	pl, err := newPlugin(ctx, args, fh, allFeatures, clk)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return pl
}

func zoneNode(name, z string) *v1.Node {
	return st.MakeNode().Name(name).Label(v1.LabelHostname, name).Label(zone, z).Obj()
}

func appPod(name, node string) *v1.Pod {
	return st.MakePod().Namespace("ns").Name(name).Label("app", "web").Node(node).Obj()
}

func filterAll(t *testing.T, pl *IndexedPodTopologySpread, snapshot *cache.Snapshot, pod *v1.Pod) map[string]string {
	t.Helper()
	ctx := context.Background()
	nodes, _ := snapshot.NodeInfos().List()
	state := framework.NewCycleState()
	if _, s := pl.PreFilter(ctx, state, pod, nodes); !s.IsSuccess() {
		t.Fatalf("PreFilter: %v", s)
	}
	got := map[string]string{}
	for _, n := range nodes {
		s := pl.Filter(ctx, state, pod, n)
		got[n.Node().Name] = s.Code().String()
		if s != nil {
			got[n.Node().Name] += strings.Join(s.Reasons(), "")
		}
	}
	return got
}

// Named behaviours of Filter, each with the statuses upstream gives (the differential test
// checks agreement on random inputs; these pin down what agreement means).
func TestFilter(t *testing.T) {
	hardZone := func(maxSkew int) *st.PodWrapper {
		return st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
			SpreadConstraint(maxSkew, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, nil)
	}
	rejected := fwk.Unschedulable.String() + podtopologyspread.ErrReasonConstraintsNotMatch
	missingLabel := fwk.UnschedulableAndUnresolvable.String() + podtopologyspread.ErrReasonNodeLabelNotMatch
	ok := fwk.Success.String()
	terminating := func(p *v1.Pod) *v1.Pod { p.DeletionTimestamp = &metav1.Time{}; return p }
	otherNS := func(p *v1.Pod) *v1.Pod { p.Namespace = "other"; return p }

	tests := []struct {
		name     string
		nodes    []*v1.Node
		existing []*v1.Pod
		incoming *v1.Pod
		want     map[string]string
	}{
		{
			name:     "zone skew 2 blocks the fuller zone",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")},
			existing: []*v1.Pod{appPod("p1", "a"), appPod("p2", "a"), appPod("p3", "b")},
			incoming: hardZone(1).Obj(),
			want:     map[string]string{"a": rejected, "b": ok},
		},
		{
			name:     "a node without the topology key is unresolvable",
			nodes:    []*v1.Node{zoneNode("a", "z1"), st.MakeNode().Name("c").Obj()},
			incoming: hardZone(1).Obj(),
			want:     map[string]string{"a": ok, "c": missingLabel},
		},
		{
			name:     "terminating pods and other namespaces are not counted",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")},
			existing: []*v1.Pod{terminating(appPod("p1", "a")), otherNS(appPod("p2", "a")), terminating(appPod("p3", "a"))},
			incoming: hardZone(1).Obj(),
			want:     map[string]string{"a": ok, "b": ok},
		},
		{
			name:     "fewer domains than minDomains make the global minimum 0",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")},
			existing: []*v1.Pod{appPod("p1", "a"), appPod("p2", "b")},
			incoming: st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
				SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), ptr.To[int32](3), nil, nil, nil).Obj(),
			want: map[string]string{"a": rejected, "b": rejected},
		},
		{
			name:     "nodeAffinityPolicy Honor counts only nodes the pod may use",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2"), zoneNode("c", "z3")},
			existing: []*v1.Pod{appPod("p1", "a"), appPod("p2", "b"), appPod("p3", "b")},
			// z3 is left out, so the minimum is z1's 1, not z3's 0.
			incoming: hardZone(1).NodeAffinityIn(zone, []string{"z1", "z2"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			want:     map[string]string{"a": ok, "b": rejected, "c": ok},
		},
		{
			name:     "nodeAffinityPolicy Ignore counts every node",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2"), zoneNode("c", "z3")},
			existing: []*v1.Pod{appPod("p1", "a"), appPod("p2", "b"), appPod("p3", "b")},
			incoming: st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
				SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, ptr.To(v1.NodeInclusionPolicyIgnore), nil, nil).
				NodeAffinityIn(zone, []string{"z1", "z2"}, st.NodeSelectorTypeMatchExpressions).Obj(),
			want: map[string]string{"a": rejected, "b": rejected, "c": ok},
		},
		{
			name:     "matchLabelKeys narrows the selector to the pod's revision",
			nodes:    []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")},
			existing: []*v1.Pod{appPod("old1", "a"), appPod("old2", "a"), st.MakePod().Namespace("ns").Name("new1").Label("app", "web").Label("rev", "2").Node("b").Obj()},
			incoming: st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").Label("rev", "2").
				SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, []string{"rev"}).Obj(),
			want: map[string]string{"a": ok, "b": rejected},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snapshot := cache.NewSnapshot(tt.existing, tt.nodes)
			pl := newTestPlugin(t, snapshot, nil, nil)
			if diff := cmp.Diff(tt.want, filterAll(t, pl, snapshot, tt.incoming)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}

// Preemption removes a pod from a cloned state; the original state must not see it.
func TestRemovePodOnCloneLeavesTheOriginalAlone(t *testing.T) {
	nodes := []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")}
	existing := []*v1.Pod{appPod("p1", "a"), appPod("p2", "a")}
	snapshot := cache.NewSnapshot(existing, nodes)
	pl := newTestPlugin(t, snapshot, nil, nil)
	pod := st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
		SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, nil).Obj()
	ctx := context.Background()
	infos, _ := snapshot.NodeInfos().List()
	state := framework.NewCycleState()
	if _, s := pl.PreFilter(ctx, state, pod, infos); !s.IsSuccess() {
		t.Fatal(s)
	}
	nodeA, _ := snapshot.NodeInfos().Get("a")
	clone := state.Clone()
	for _, p := range nodeA.GetPods() {
		if s := pl.RemovePod(ctx, clone, pod, p, nodeA); !s.IsSuccess() {
			t.Fatal(s)
		}
	}
	if s := pl.Filter(ctx, clone, pod, nodeA); !s.IsSuccess() {
		t.Errorf("Filter on a after removing its pods from the clone: %v, want success", s)
	}
	if s := pl.Filter(ctx, state, pod, nodeA); s.Code() != fwk.Unschedulable {
		t.Errorf("Filter on a with the original state: %v, want Unschedulable", s)
	}
}

// Score with the system defaults: pods of a Service spread by hostname and zone; fewer
// matching pods score higher after normalization.
func TestScoreWithSystemDefaults(t *testing.T) {
	nodes := []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z1"), zoneNode("c", "z2")}
	existing := []*v1.Pod{appPod("p1", "a"), appPod("p2", "a"), appPod("p3", "b")}
	snapshot := cache.NewSnapshot(existing, nodes)
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	pl := newTestPlugin(t, snapshot, &config.IndexedPodTopologySpreadArgs{DefaultingType: schedconfig.SystemDefaulting}, nil, svc)
	ctx := context.Background()
	pod := st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").Obj()
	infos, _ := snapshot.NodeInfos().List()
	state := framework.NewCycleState()
	if s := pl.PreScore(ctx, state, pod, infos); !s.IsSuccess() {
		t.Fatal(s)
	}
	var scores fwk.NodeScoreList
	for _, n := range infos {
		sc, s := pl.Score(ctx, state, pod, n)
		if !s.IsSuccess() {
			t.Fatal(s)
		}
		scores = append(scores, fwk.NodeScore{Name: n.Node().Name, Score: sc})
	}
	if s := pl.NormalizeScore(ctx, state, pod, scores); !s.IsSuccess() {
		t.Fatal(s)
	}
	got := map[string]int64{}
	for _, s := range scores {
		got[s.Name] = s.Score
	}
	// Raw: hostname weight ln(5), zone weight ln(4); a: 2*1.61+2 + 3*1.39+4 = 13.38 -> 13,
	// b: 1.61+2 + 4.16+4 = 11.77 -> 12, c: 0+2 + 0+4 = 6. Normalized: 100*(13+6-s)/13.
	want := map[string]int64{"a": 46, "b": 53, "c": 100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("normalized scores (-want +got):\n%s", diff)
	}
}

// Counts no pod has asked for are dropped after idleTTL; memory follows the pending pods.
func TestIndexDropsIdleCounts(t *testing.T) {
	snapshot := cache.NewSnapshot([]*v1.Pod{appPod("p1", "a")}, []*v1.Node{zoneNode("a", "z1")})
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	pl := newTestPlugin(t, snapshot, nil, clk)
	constrained := func(app string) *v1.Pod {
		return st.MakePod().Namespace("ns").Name("incoming-"+app).Label("app", app).
			SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", app).Obj(), nil, nil, nil, nil).Obj()
	}
	filterAll(t, pl, snapshot, constrained("web"))
	filterAll(t, pl, snapshot, constrained("db"))
	if n := len(pl.index.selectors); n != 2 {
		t.Fatalf("selectors after two pods = %d, want 2", n)
	}
	clk.Step(idleTTL / 2)
	filterAll(t, pl, snapshot, constrained("web"))
	clk.Step(idleTTL/2 + sweepInterval + time.Second)
	filterAll(t, pl, snapshot, constrained("web"))
	if _, ok := pl.index.selectors["ns\x00app=db"]; ok || len(pl.index.selectors) != 1 {
		t.Errorf("selectors after db went idle: %v, want only app=web", keys(pl.index.selectors))
	}
	if want := pl.index.selectors["ns\x00app=web"].pods; pl.index.size.countedPods != want {
		t.Errorf("countedPods = %d, want %d (web's pods only)", pl.index.size.countedPods, want)
	}
	if pl.index.stats.dropped != 2 {
		t.Errorf("dropped = %d, want 2 (db's selector and its domain table)", pl.index.stats.dropped)
	}
}

// Counts are released by the background sweep even when no constrained pod arrives.
func TestIndexReleasesIdleCountsWithoutCycles(t *testing.T) {
	snapshot := cache.NewSnapshot([]*v1.Pod{appPod("p1", "a")}, []*v1.Node{zoneNode("a", "z1")})
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	pl := newTestPlugin(t, snapshot, nil, clk)
	pod := st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
		SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, nil).Obj()
	filterAll(t, pl, snapshot, pod)
	clk.Step(idleTTL + sweepInterval + time.Second)
	pl.index.sweepIdle()
	if n, a := len(pl.index.selectors), len(pl.index.aggregates); n+a != 0 {
		t.Errorf("after idleTTL with no cycle: %d selectors, %d domain tables; want none", n, a)
	}
	// The layout (O(nodes), shared by every selector) waits for a cycle: Filter may be reading
	// its domain table without the lock.
	if len(pl.index.layouts) != 1 {
		t.Errorf("%d layouts after the background sweep, want the one kept for the next cycle", len(pl.index.layouts))
	}
	clk.Step(sweepInterval + time.Second)
	other := st.MakePod().Namespace("ns").Name("cpu-only").Label("app", "db").
		SpreadConstraint(1, v1.LabelHostname, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "db").Obj(), nil, nil, nil, nil).Obj()
	filterAll(t, pl, snapshot, other)
	for _, l := range pl.index.layouts {
		if l.topologyKey == zone {
			t.Errorf("the idle zone layout survived a cycle's sweep")
		}
	}
	if _, ok := pl.index.domainTables[zone]; ok {
		t.Error("the zone domain table survived its last layout")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The args decode through kube-scheduler's scheme under our plugin's name, with upstream's
// defaults, and upstream's validation names the field.
func TestArgsDecodeDefaultAndValidate(t *testing.T) {
	decode := func(args string) (*config.IndexedPodTopologySpreadArgs, error) {
		yaml := `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: workbench-scheduler
  plugins:
    multiPoint:
      enabled: [{name: IndexedPodTopologySpread}]
      disabled: [{name: PodTopologySpread}]
  pluginConfig:
  - name: IndexedPodTopologySpread
    args:
` + args
		obj, _, err := kubeschedulerscheme.Codecs.UniversalDecoder().Decode([]byte(yaml), nil, nil)
		if err != nil {
			return nil, err
		}
		for _, pc := range obj.(*schedconfig.KubeSchedulerConfiguration).Profiles[0].PluginConfig {
			if pc.Name == Name {
				a, _ := pc.Args.(*config.IndexedPodTopologySpreadArgs)
				return a, nil
			}
		}
		return nil, nil
	}
	got, err := decode("      defaultConstraints: []\n")
	if err != nil {
		t.Fatal(err)
	}
	want := &config.IndexedPodTopologySpreadArgs{DefaultingType: schedconfig.SystemDefaulting}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(config.IndexedPodTopologySpreadArgs{}, "TypeMeta"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("defaulted args (-want +got):\n%s", diff)
	}
	if _, err := decode("      defaultingTyp: List\n"); err == nil || !strings.Contains(err.Error(), "defaultingTyp") {
		t.Errorf("misspelled field: err = %v, want it named", err)
	}

	bad, err := decode(`      defaultingType: List
      defaultConstraints:
      - maxSkew: 0
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
`)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := cache.NewSnapshot(nil, nil)
	_, ctx := ktesting.NewTestContext(t)
	fh, _ := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(snapshot))
	_, err = New(ctx, bad, fh)
	for _, field := range []string{
		"pluginConfig[IndexedPodTopologySpread].args.defaultConstraints[0].maxSkew",
		"pluginConfig[IndexedPodTopologySpread].args.defaultConstraints[0].labelSelector",
	} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("New with invalid args: err = %v, want it to name %s", err, field)
		}
	}
}

// Node churn empties domains (hostnames of removed nodes); the index reuses their ids, so the
// tables never outgrow the live nodes and no cycle has to rebuild them.
func TestIndexRecyclesDomainsLeftByNodeChurn(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	var pl *IndexedPodTopologySpread
	pod := st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
		SpreadConstraint(1, v1.LabelHostname, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, nil).Obj()
	snapshot := cache.NewEmptySnapshot()
	pl = newTestPlugin(t, snapshot, nil, clk)
	for round := range 4 {
		var nodes []*v1.Node
		var pods []*v1.Pod
		for i := range 100 {
			name := fmt.Sprintf("r%d-n%d", round, i)
			nodes = append(nodes, zoneNode(name, "z1"))
			if i%2 == 0 {
				pods = append(pods, appPod("p-"+name, name))
			}
		}
		// The plugin reads whatever its handle's snapshot holds; swap the contents in place.
		*snapshot = *cache.NewSnapshot(pods, nodes)
		clk.Step(sweepInterval + time.Second)
		got := filterAll(t, pl, snapshot, pod)
		for name, status := range got {
			var i int
			fmt.Sscanf(name[strings.Index(name, "-n")+2:], "%d", &i)
			wantOK := i%2 == 1
			if (status == fwk.Success.String()) != wantOK {
				t.Fatalf("round %d: Filter on %s = %s, want success %v", round, name, status, wantOK)
			}
		}
	}
	for key, table := range pl.index.domainTables {
		if live := len(pl.index.byName); len(table.names) > live || len(table.id) > live {
			t.Errorf("%s's domain table holds %d ids (%d named) for %d nodes after churn", key, len(table.names), len(table.id), live)
		}
	}
	if pl.index.stats.domainsRecycled == 0 {
		t.Error("no domain id was recycled")
	}
	if pl.index.stats.layoutBuilds != 1 {
		t.Errorf("layout builds = %d, want 1: churn must not rebuild", pl.index.stats.layoutBuilds)
	}
}

// A selector listing a value twice (app In [web, web]) is indexed once per distinct value, so
// a pod arriving after the selector was built is counted once.
func TestIndexCountsPodOnceForRepeatedSelectorValues(t *testing.T) {
	nodes := []*v1.Node{zoneNode("a", "z1"), zoneNode("b", "z2")}
	snapshot := cache.NewSnapshot([]*v1.Pod{appPod("p1", "a")}, nodes)
	pl := newTestPlugin(t, snapshot, nil, nil)
	sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "web"}}}}
	pod := st.MakePod().Namespace("ns").Name("incoming").Label("app", "web").
		SpreadConstraint(1, zone, v1.DoNotSchedule, sel, nil, nil, nil, nil).Obj()
	filterAll(t, pl, snapshot, pod)
	// Two more web pods arrive on b: z1 has 1, z2 has 2, so z2 is blocked and z1 is not.
	*snapshot = *cache.NewSnapshot([]*v1.Pod{appPod("p1", "a"), appPod("p2", "b"), appPod("p3", "b")}, nodes)
	got := filterAll(t, pl, snapshot, pod)
	want := map[string]string{"a": fwk.Success.String(), "b": fwk.Unschedulable.String() + podtopologyspread.ErrReasonConstraintsNotMatch}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Filter codes (-want +got):\n%s", diff)
	}
	for key, sc := range pl.index.selectors {
		if sc.pods != 3 {
			t.Errorf("selector %q counts %d pods, want 3", key, sc.pods)
		}
	}
}

// A DaemonSet pod's affinity names its node: its layout is built from that node alone and
// counts one node, however large the cluster.
func TestIndexBuildsNodeNamingLayoutFromItsNodes(t *testing.T) {
	var nodes []*v1.Node
	for i := range 200 {
		nodes = append(nodes, zoneNode(fmt.Sprintf("n%d", i), fmt.Sprintf("z%d", i%3)))
	}
	snapshot := cache.NewSnapshot([]*v1.Pod{appPod("p1", "n7")}, nodes)
	pl := newTestPlugin(t, snapshot, nil, nil)
	pod := st.MakePod().Namespace("ns").Name("ds-pod").Label("app", "web").
		NodeAffinityIn(metav1.ObjectNameField, []string{"n7"}, st.NodeSelectorTypeMatchFields).
		SpreadConstraint(1, zone, v1.DoNotSchedule, st.MakeLabelSelector().Label("app", "web").Obj(), nil, nil, nil, nil).Obj()
	got := filterAll(t, pl, snapshot, pod)
	if got["n7"] != fwk.Success.String() {
		t.Errorf("Filter on n7 = %s, want Success", got["n7"])
	}
	for _, l := range pl.index.layouts {
		if len(l.domainOf) != 1 || len(l.filter.names) != 1 {
			t.Errorf("layout %q has %d members from names %v, want only n7", l.key, len(l.domainOf), l.filter.names)
		}
	}
	if len(pl.index.general) != 0 {
		t.Errorf("%d general layouts, want none: a node-naming layout is re-evaluated only for its nodes", len(pl.index.general))
	}
}
