package gang

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
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
	testingclock "k8s.io/utils/clock/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configscheme "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

const gpu v1.ResourceName = "nvidia.com/gpu"

var testStart = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testArgs(t testing.TB) *config.GangArgs {
	t.Helper()
	in := &configv1.GangArgs{}
	configscheme.Scheme.Default(in)
	out := &config.GangArgs{}
	if err := configscheme.Scheme.Convert(in, out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func podGroup(name string, minMember int32, labels map[string]string) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ds", Name: name, Labels: labels, CreationTimestamp: metav1.NewTime(testStart)},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
	}
}

// member is a pending pod of gang group asking for req.
func member(group, name string, req map[v1.ResourceName]string) *v1.Pod {
	return st.MakePod().Namespace("ds").Name(name).UID(name).SchedulerName("workbench-scheduler").
		Label(GroupLabel, group).Req(req).CreationTimestamp(metav1.NewTime(testStart)).Obj()
}

func gpuNode(name string, gpus string, labels map[string]string) *v1.Node {
	w := st.MakeNode().Name(name).Label(v1.LabelHostname, name).Capacity(map[v1.ResourceName]string{"cpu": "32", "memory": "128Gi", "pods": "110", gpu: gpus})
	for k, v := range labels {
		w = w.Label(k, v)
	}
	return w.Obj()
}

func cpuNode(name, cpu string) *v1.Node {
	return st.MakeNode().Name(name).Label(v1.LabelHostname, name).Capacity(map[v1.ResourceName]string{"cpu": cpu, "memory": "64Gi", "pods": "110"}).Obj()
}

type cluster struct {
	nodes  []*v1.Node
	pods   []*v1.Pod
	groups []*schedv1alpha1.PodGroup
}

type harness struct {
	t        *testing.T
	ctx      context.Context
	fh       framework.Framework
	pl       *Gang
	clock    *testingclock.FakeClock
	pgClient *pgfake.Clientset
	recorder *events.FakeRecorder
}

// newHarness builds a real framework with the upstream filters a gang depends on (resources,
// node affinity, taints, inter-pod affinity) and Gang, over the given cluster.
func newHarness(t *testing.T, c cluster) *harness {
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
	var groups []runtime.Object
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	var bound []*v1.Pod
	for _, p := range c.pods {
		if p.Spec.NodeName != "" {
			bound = append(bound, p)
		}
	}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	pgClient := pgfake.NewSimpleClientset(groups...)
	h := &harness{t: t, ctx: ctx, pgClient: pgClient, clock: testingclock.NewFakeClock(testStart), recorder: events.NewFakeRecorder(100)}

	registry := plugins.NewInTreeRegistry()
	if err := registry.Register(Name, func(ctx context.Context, _ runtime.Object, fh fwk.Handle) (fwk.Plugin, error) {
		pl, err := NewWithClient(ctx, testArgs(t), fh, pgClient)
		if err != nil {
			return nil, err
		}
		pl.clock = h.clock
		h.pl = pl
		return pl, nil
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
			QueueSort:  enabled(Name),
			PreFilter:  enabled(names.NodeResourcesFit, names.NodeAffinity, names.InterPodAffinity, Name),
			Filter:     enabled(names.NodeUnschedulable, names.NodeResourcesFit, names.NodeAffinity, names.TaintToleration, names.InterPodAffinity, Name),
			PostFilter: enabled(Name),
			Reserve:    enabled(Name),
			Permit:     enabled(Name),
			Bind:       enabled(names.DefaultBinder),
		},
		PluginConfig: []schedconfig.PluginConfig{
			{Name: names.NodeResourcesFit, Args: &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
				Type: schedconfig.LeastAllocated, Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}}}},
			{Name: names.InterPodAffinity, Args: &schedconfig.InterPodAffinityArgs{HardPodAffinityWeight: 1}},
			{Name: names.NodeAffinity, Args: &schedconfig.NodeAffinityArgs{}},
		},
	}
	fh, err := frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithSnapshotSharedLister(cache.NewSnapshot(bound, c.nodes)),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithEventRecorder(h.recorder),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithPodActivator(queue.NewTestQueue(ctx, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.fh = fh
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if !waitFor(func() bool { return h.pl.Synced() }) {
		t.Fatal("plugin did not sync")
	}
	return h
}

func waitFor(cond func() bool) bool {
	for i := 0; i < 500; i++ {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// preFilter runs the profile's PreFilter plugins for pod in a fresh cycle, as the scheduler does.
func (h *harness) preFilter(pod *v1.Pod) (*framework.CycleState, *fwk.PreFilterResult, *fwk.Status) {
	state := framework.NewCycleState()
	res, status, _ := h.fh.RunPreFilterPlugins(h.ctx, state, pod)
	return state, res, status
}

// filter runs the profile's Filter plugins for pod on node, from the snapshot.
func (h *harness) filter(state fwk.CycleState, pod *v1.Pod, node string) *fwk.Status {
	ni, err := h.fh.SnapshotSharedLister().NodeInfos().Get(node)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.fh.RunFilterPlugins(h.ctx, state, pod, ni)
}

// planned returns the plan's nodes of gang key, one entry per slot, or nil if not admitted.
func (h *harness) planned(key string) []string {
	h.pl.mu.Lock()
	defer h.pl.mu.Unlock()
	g := h.pl.gangs[key]
	if g == nil || g.plan == nil {
		return nil
	}
	var nodes []string
	for _, s := range g.plan.slots {
		nodes = append(nodes, s.node)
	}
	return nodes
}
