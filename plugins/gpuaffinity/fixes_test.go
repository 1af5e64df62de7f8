package gpuaffinity

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

func TestQueueingHintsSeeEveryChangeFilterReads(t *testing.T) {
	logger, _ := ktesting.NewTestContext(t)
	h := newHarness(t, testArgs(t, func(a *configv1.GPUAffinityArgs) { a.GPUNodeLabels = []string{"example.com/accelerator"} }))
	node := extNode("n", map[v1.ResourceName]string{gpu: "4", mig1g: "7"},
		map[string]string{"nvidia.com/gpu.product": a100, "nvidia.com/mig-1g.10gb.memory": "9728"})
	changed := func(mutate func(*v1.Node)) *v1.Node {
		n := node.DeepCopy()
		mutate(n)
		return n
	}
	emptyModel := withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "")
	emptyMemory := withAnnotations(gpuPod("p", "1").Obj(), MinMemoryAnnotation, "")
	cpu := cpuPod("c").Obj()

	tests := []struct {
		name string
		fn   fwk.QueueingHintFn
		old  any
		new  any
		want fwk.QueueingHint
	}{
		{"count label added", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Labels["nvidia.com/gpu.count"] = "4" }), fwk.Queue},
		{"configured GPU node label removed", h.pl.isSchedulableAfterNodeChange,
			changed(func(n *v1.Node) { n.Labels["example.com/accelerator"] = "" }), node, fwk.Queue},
		{"memory label of a slice changed", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Labels["nvidia.com/mig-1g.10gb.memory"] = "10240" }), fwk.Queue},
		{"memory label of a new slice profile added", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Labels["nvidia.com/mig-3g.40gb.memory"] = "40192" }), fwk.Queue},
		{"MIG slices allocatable dropped to 0", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Status.Allocatable[mig1g] = *resourceQuantity(0) }), fwk.Queue},
		{"GPU resource gone from capacity", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { delete(n.Status.Capacity, gpu) }), fwk.Queue},
		{"CPU allocatable changed", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Status.Allocatable[v1.ResourceCPU] = *resourceQuantity(32) }), fwk.QueueSkip},
		{"memory label of something else changed", h.pl.isSchedulableAfterNodeChange, node,
			changed(func(n *v1.Node) { n.Labels["example.com/ram.memory"] = "1" }), fwk.QueueSkip},
		// "" is rejected; removing it reads as "" too, and was skipped until the periodic flush.
		{"invalid empty model annotation removed", h.pl.isSchedulableAfterPodUpdated, emptyModel, gpuPod("p", "1").Obj(), fwk.Queue},
		{"invalid empty memory annotation removed", h.pl.isSchedulableAfterPodUpdated, emptyMemory, gpuPod("p", "1").Obj(), fwk.Queue},
		{"empty model annotation added", h.pl.isSchedulableAfterPodUpdated, gpuPod("p", "1").Obj(), emptyModel, fwk.Queue},
		{"GPU taint toleration added", h.pl.isSchedulableAfterPodUpdated, cpu, cpuPod("c").Toleration("nvidia.com/gpu").Obj(), fwk.Queue},
		{"other toleration added", h.pl.isSchedulableAfterPodUpdated, cpu, cpuPod("c").Toleration("example.com/spot").Obj(), fwk.QueueSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn(logger, cpu, tt.old, tt.new)
			if err != nil || got != tt.want {
				t.Errorf("hint = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// A pod without GPUs is kept off GPU nodes unless a DaemonSet of the apps group controls it or
// it tolerates the GPU taint; the outcome on a100-1, a GPU node, says which.
func TestCPUPodRuleExemptions(t *testing.T) {
	rejected := cpuPodReject("8 nvidia.com/gpu, NVIDIA-A100-SXM4-80GB")
	tolerate := func(key string, op v1.TolerationOperator, value string, effect v1.TaintEffect) *v1.Pod {
		return cpuPod("p").Tolerations([]v1.Toleration{{Key: key, Operator: op, Value: value, Effect: effect}}).Obj()
	}
	tests := []struct {
		name   string
		mutate func(*configv1.GPUAffinityArgs)
		pod    *v1.Pod
		want   string
	}{
		{name: "apps/v1 DaemonSet pod", pod: cpuPod("p").OwnerReference("dcgm", appsDaemonSet).Obj(), want: "Skip"},
		{name: "DaemonSet kind of another group", want: rejected,
			pod: cpuPod("p").OwnerReference("ds", schema.GroupVersionKind{Group: "apps.kruise.io", Version: "v1alpha1", Kind: "DaemonSet"}).Obj()},
		{name: "DaemonSet kind of the core group", want: rejected,
			pod: cpuPod("p").OwnerReference("ds", schema.GroupVersionKind{Version: "v1", Kind: "DaemonSet"}).Obj()},
		{name: "tolerates the GPU taint (Exists)", pod: tolerate("nvidia.com/gpu", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule), want: "Skip"},
		{name: "tolerates the GPU taint with a value and every effect", pod: tolerate("nvidia.com/gpu", v1.TolerationOpEqual, "present", ""), want: "Skip"},
		{name: "tolerates every taint", pod: tolerate("", v1.TolerationOpExists, "", ""), want: "Skip"},
		{name: "tolerates the GPU taint for NoExecute only", pod: tolerate("nvidia.com/gpu", v1.TolerationOpExists, "", v1.TaintEffectNoExecute), want: rejected},
		{name: "tolerates another taint", pod: tolerate("example.com/spot", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule), want: rejected},
		{name: "tolerates the configured taint key",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GPUNodeTaintKey = "example.com/gpu" },
			pod:    tolerate("example.com/gpu", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule), want: "Skip"},
		{name: "tolerates the default key when another is configured",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GPUNodeTaintKey = "example.com/gpu" },
			pod:    tolerate("nvidia.com/gpu", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule),
			want:   unresolvable + "node is a GPU node (8 nvidia.com/gpu, NVIDIA-A100-SXM4-80GB) and the pod requests no GPU; pods without a GPU request are kept off GPU nodes unless they tolerate the example.com/gpu taint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testArgs(t, tt.mutate))
			got := h.filterAll(t, tt.pod)
			outcome, ok := got["*"]
			if !ok {
				outcome = got["a100-1"]
			}
			if outcome != tt.want {
				t.Errorf("outcome = %q, want %q", outcome, tt.want)
			}
		})
	}
	t.Run("a GPU pod tolerating the taint still keeps off the special SKU", func(t *testing.T) {
		h := newHarness(t, testArgs(t, nil))
		got := h.filterAll(t, gpuPod("p", "1").Toleration("nvidia.com/gpu").Obj())["h100-1"]
		if want := unresolvable + "node has special GPU SKU h100 (NVIDIA-H100-80GB-HBM3), reserved for pods that name it in workbench.dev/gpu-model"; got != want {
			t.Errorf("outcome on h100-1 = %q, want %q", got, want)
		}
	})
}

// The event's message quotes the pod's annotation; a "%" in it must reach the event as written.
func TestInvalidRequestEventIsNotAFormat(t *testing.T) {
	h := newHarness(t, testArgs(t, nil))
	h.filterAll(t, withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "a100%d"))
	want := `Warning InvalidGPURequest annotation workbench.dev/gpu-model="a100%d" names unknown GPU model "a100%d"; ` +
		"known SKUs: t4, a100, h100 (or a product label value present on a node)"
	select {
	case ev := <-h.recorder.Events:
		if ev != want {
			t.Errorf("event = %q, want %q", ev, want)
		}
	default:
		t.Error("no event recorded")
	}
}

// Every reason is served from the start, and a /metrics reset (DELETE, which resets the
// registry) zeroes the counts without losing those that follow.
func TestRejectionCounterServesEveryReasonAndSurvivesReset(t *testing.T) {
	h := newHarness(t, testArgs(t, nil))
	legacyregistry.Reset()
	h.filterAll(t, cpuPod("notebook").Obj()) // six GPU nodes
	want := map[string]float64{}
	for _, r := range reasonNames {
		want[r] = 0
	}
	want["cpu_pod_on_gpu_node"] = 6
	if diff := cmp.Diff(want, rejectionCounts(t)); diff != "" {
		t.Errorf("after one CPU pod (-want +got):\n%s", diff)
	}
	legacyregistry.Reset()
	h.filterAll(t, gpuPod("session", "1").Obj()) // the CPU node, h100-1 and unlabelled-1
	want["cpu_pod_on_gpu_node"], want["no_gpus"], want["special_sku"], want["unlabelled_gpu_node"] = 0, 1, 1, 1
	if diff := cmp.Diff(want, rejectionCounts(t)); diff != "" {
		t.Errorf("after a reset and one GPU pod (-want +got):\n%s", diff)
	}
}

func rejectionCounts(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "workbench_gpuaffinity_filter_rejections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

// BenchmarkFilterRejectsCPUPod is the filter path of a CPU pod on a GPU node: the most frequent
// rejection.
func BenchmarkFilterRejectsCPUPod(b *testing.B) {
	h := newHarness(b, testArgs(b, nil))
	ctx := context.Background()
	state, pod, node := framework.NewCycleState(), cpuPod("c").Obj(), h.infos["a100-1"]
	h.pl.PreFilter(ctx, state, pod, h.nodes)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.pl.Filter(ctx, state, pod, node)
		}
	})
}

// SignPod tells apart what Filter and Score tell apart.
func TestSignPodTellsApartWhatFilterReads(t *testing.T) {
	h := newHarness(t, testArgs(t, nil))
	sign := func(pod *v1.Pod) string {
		f, s := h.pl.SignPod(context.Background(), pod)
		if !s.IsSuccess() {
			t.Fatal(s)
		}
		data, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	pairs := []struct {
		name string
		a, b *v1.Pod
	}{
		{"MIG profile", unitPod("p", mig1g, "1").Obj(), unitPod("p", mig3g, "1").Obj()},
		{"slice or whole GPU", unitPod("p", mig1g, "1").Obj(), gpuPod("p", "1").Obj()},
		{"GPU taint toleration", cpuPod("p").Obj(), cpuPod("p").Toleration("nvidia.com/gpu").Obj()},
		{"empty or absent model", gpuPod("p", "1").Obj(), withAnnotations(gpuPod("p", "1").Obj(), ModelAnnotation, "")},
	}
	for _, p := range pairs {
		if sign(p.a) == sign(p.b) {
			t.Errorf("%s: equal signatures %s", p.name, sign(p.a))
		}
	}
}

// BenchmarkFilterPassesCPUPod is the filter path of a CPU pod on a CPU node: most of the
// filtering at scale, where fail-closed recognition must stay cheap.
func BenchmarkFilterPassesCPUPod(b *testing.B) {
	h := newHarness(b, testArgs(b, nil))
	ctx := context.Background()
	state, pod, node := framework.NewCycleState(), cpuPod("c").Obj(), h.infos["cpu-1"]
	h.pl.PreFilter(ctx, state, pod, h.nodes)
	for b.Loop() {
		h.pl.Filter(ctx, state, pod, node)
	}
}
