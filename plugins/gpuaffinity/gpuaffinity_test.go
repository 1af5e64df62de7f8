package gpuaffinity

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configscheme "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

const gpu = v1.ResourceName("nvidia.com/gpu")

// testArgs are the versioned args as a user writes them, defaulted and converted the way the
// scheduler does it.
func testArgs(t testing.TB, mutate func(*configv1.GPUAffinityArgs)) *config.GPUAffinityArgs {
	t.Helper()
	in := &configv1.GPUAffinityArgs{SKUs: []configv1.GPUSKU{
		{Name: "t4", Products: []string{"Tesla-T4"}},
		{Name: "a100", Products: []string{"NVIDIA-A100-SXM4-80GB"}},
		{Name: "h100", Products: []string{"NVIDIA-H100-80GB-HBM3"}, Special: true},
	}}
	if mutate != nil {
		mutate(in)
	}
	configscheme.Scheme.Default(in)
	out := &config.GPUAffinityArgs{}
	if err := configscheme.Scheme.Convert(in, out, nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func gpuNode(name, product, memMiB string, gpus int64) *v1.Node {
	w := st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{"cpu": "64", "memory": "512Gi", "pods": "110"})
	if product != "" {
		w = w.Label("nvidia.com/gpu.product", product)
	}
	if memMiB != "" {
		w = w.Label("nvidia.com/gpu.memory", memMiB)
	}
	n := w.Obj()
	if gpus > 0 {
		n.Status.Allocatable[gpu] = *resourceQuantity(gpus)
		n.Status.Capacity[gpu] = *resourceQuantity(gpus)
	}
	return n
}

// testCluster: a CPU node, a T4, two A100s (one with 6 GPUs in use), a special H100, an
// unlabelled GPU node and an L4 that no SKU lists.
func testCluster() ([]*v1.Node, []*v1.Pod) {
	nodes := []*v1.Node{
		gpuNode("cpu-1", "", "", 0),
		gpuNode("t4-1", "Tesla-T4", "15360", 4),
		gpuNode("a100-1", "NVIDIA-A100-SXM4-80GB", "81920", 8),
		gpuNode("a100-2", "NVIDIA-A100-SXM4-80GB", "81920", 8),
		gpuNode("h100-1", "NVIDIA-H100-80GB-HBM3", "81920", 8),
		gpuNode("unlabelled-1", "", "", 2),
		gpuNode("l4-1", "NVIDIA-L4", "23034", 4),
	}
	running := []*v1.Pod{
		st.MakePod().Namespace("ml").Name("training").Node("a100-1").Req(map[v1.ResourceName]string{gpu: "6"}).Obj(),
	}
	return nodes, running
}

type harness struct {
	pl       *GPUAffinity
	recorder *events.FakeRecorder
	infos    map[string]fwk.NodeInfo
	nodes    []fwk.NodeInfo
}

func newHarness(t testing.TB, args *config.GPUAffinityArgs) *harness {
	t.Helper()
	nodes, pods := testCluster()
	return newClusterHarness(t, args, nodes, pods)
}

func newClusterHarness(t testing.TB, args *config.GPUAffinityArgs, nodes []*v1.Node, pods []*v1.Pod) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	snapshot := cache.NewSnapshot(pods, nodes)
	recorder := events.NewFakeRecorder(100)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithEventRecorder(recorder))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, args, fh)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{pl: p.(*GPUAffinity), recorder: recorder, infos: map[string]fwk.NodeInfo{}}
	infos, err := snapshot.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	for _, ni := range infos {
		h.infos[ni.Node().Name] = ni
		h.nodes = append(h.nodes, ni)
	}
	return h
}

// filterAll runs PreFilter, then Filter on every node, and returns each node's outcome: "" for
// success, otherwise "<code>: <reason>". A PreFilter rejection is returned under the key "*".
func (h *harness) filterAll(t *testing.T, pod *v1.Pod) map[string]string {
	t.Helper()
	ctx := context.Background()
	state := framework.NewCycleState()
	_, s := h.pl.PreFilter(ctx, state, pod, h.nodes)
	if s.IsSkip() {
		return map[string]string{"*": "Skip"}
	}
	if !s.IsSuccess() {
		return map[string]string{"*": s.Code().String() + ": " + s.Message()}
	}
	out := map[string]string{}
	for name, ni := range h.infos {
		if s := h.pl.Filter(ctx, state, pod, ni); !s.IsSuccess() {
			out[name] = s.Code().String() + ": " + s.Message()
		} else {
			out[name] = ""
		}
	}
	return out
}

func gpuPod(name string, gpus string) *st.PodWrapper {
	return st.MakePod().Namespace("ml").Name(name).Req(map[v1.ResourceName]string{"cpu": "1", gpu: gpus})
}

func cpuPod(name string) *st.PodWrapper {
	return st.MakePod().Namespace("ml").Name(name).Req(map[v1.ResourceName]string{"cpu": "1"})
}

func withAnnotations(pod *v1.Pod, kv ...string) *v1.Pod {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		pod.Annotations[kv[i]] = kv[i+1]
	}
	return pod
}

const unresolvable = "UnschedulableAndUnresolvable: "

// cpuPodReject is the CPU-pod rule's outcome on a GPU node described as evidence.
func cpuPodReject(evidence string) string {
	return unresolvable + "node is a GPU node (" + evidence + ") and the pod requests no GPU; " +
		"pods without a GPU request are kept off GPU nodes unless they tolerate the nvidia.com/gpu taint"
}

func TestFilter(t *testing.T) {
	allPass := func(overrides map[string]string) map[string]string {
		out := map[string]string{"cpu-1": "", "t4-1": "", "a100-1": "", "a100-2": "", "h100-1": "", "unlabelled-1": "", "l4-1": ""}
		for k, v := range overrides {
			out[k] = v
		}
		return out
	}
	noGPUs := unresolvable + "node has no allocatable nvidia.com/gpu"
	specialReject := unresolvable + "node has special GPU SKU h100 (NVIDIA-H100-80GB-HBM3), reserved for pods that name it in workbench.dev/gpu-model"
	unlabelled := unresolvable + "node has GPUs but no nvidia.com/gpu.product label yet; a GPU node takes no GPU pods until its model is labelled"
	tests := []struct {
		name   string
		mutate func(*configv1.GPUAffinityArgs)
		pod    *v1.Pod
		want   map[string]string
	}{
		{
			name: "cpu pod is kept off every GPU node",
			pod:  cpuPod("notebook").Obj(),
			want: allPass(map[string]string{
				"t4-1":         cpuPodReject("4 nvidia.com/gpu, Tesla-T4"),
				"a100-1":       cpuPodReject("8 nvidia.com/gpu, NVIDIA-A100-SXM4-80GB"),
				"a100-2":       cpuPodReject("8 nvidia.com/gpu, NVIDIA-A100-SXM4-80GB"),
				"h100-1":       cpuPodReject("8 nvidia.com/gpu, NVIDIA-H100-80GB-HBM3"),
				"unlabelled-1": cpuPodReject("2 nvidia.com/gpu, model unlabelled"),
				"l4-1":         cpuPodReject("4 nvidia.com/gpu, NVIDIA-L4"),
			}),
		},
		{
			name:   "cpu pod with cpuPodsOnGPUNodes Allow is not filtered",
			mutate: func(a *configv1.GPUAffinityArgs) { a.CPUPodsOnGPUNodes = "Allow" },
			pod:    cpuPod("notebook").Obj(),
			want:   map[string]string{"*": "Skip"},
		},
		{
			name: "daemonset pod follows its DaemonSet",
			pod:  cpuPod("exporter").OwnerReference("dcgm", appsDaemonSet).Obj(),
			want: map[string]string{"*": "Skip"},
		},
		{
			name: "generic GPU pod is kept off the special SKU, unlabelled GPU nodes and nodes without GPUs",
			pod:  gpuPod("session", "1").Obj(),
			want: allPass(map[string]string{"h100-1": specialReject, "cpu-1": noGPUs, "unlabelled-1": unlabelled}),
		},
		{
			name:   "genericPodsOnUnlabelledGPUNodes lets generic GPU pods onto unlabelled GPU nodes",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GenericPodsOnUnlabelledGPUNodes = true },
			pod:    gpuPod("session", "1").Obj(),
			want:   allPass(map[string]string{"h100-1": specialReject, "cpu-1": noGPUs}),
		},
		{
			name: "naming the special SKU by annotation admits it and nothing else",
			pod:  withAnnotations(gpuPod("llm", "8").Obj(), ModelAnnotation, "h100"),
			want: allPass(map[string]string{
				"cpu-1":        noGPUs,
				"t4-1":         unresolvable + `pod asks for GPU model workbench.dev/gpu-model="h100"; node has Tesla-T4`,
				"a100-1":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model="h100"; node has NVIDIA-A100-SXM4-80GB`,
				"a100-2":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model="h100"; node has NVIDIA-A100-SXM4-80GB`,
				"unlabelled-1": unresolvable + `pod asks for GPU model workbench.dev/gpu-model="h100"; node has no nvidia.com/gpu.product label`,
				"l4-1":         unresolvable + `pod asks for GPU model workbench.dev/gpu-model="h100"; node has NVIDIA-L4`,
			}),
		},
		{
			name: "naming the special SKU by nodeSelector exempts it; NodeAffinity matches the label",
			pod:  gpuPod("llm", "8").NodeSelector(map[string]string{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}).Obj(),
			want: allPass(map[string]string{"cpu-1": noGPUs, "unlabelled-1": unlabelled}),
		},
		{
			name: "any-of list, spaces and case are accepted",
			pod:  withAnnotations(gpuPod("s", "1").Obj(), ModelAnnotation, " A100 ,tesla-t4"),
			want: allPass(map[string]string{
				"cpu-1":        noGPUs,
				"h100-1":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model=" A100 ,tesla-t4"; node has NVIDIA-H100-80GB-HBM3`,
				"unlabelled-1": unresolvable + `pod asks for GPU model workbench.dev/gpu-model=" A100 ,tesla-t4"; node has no nvidia.com/gpu.product label`,
				"l4-1":         unresolvable + `pod asks for GPU model workbench.dev/gpu-model=" A100 ,tesla-t4"; node has NVIDIA-L4`,
			}),
		},
		{
			name: "a product value no SKU lists is accepted when a node has it",
			pod:  withAnnotations(gpuPod("s", "1").Obj(), ModelAnnotation, "NVIDIA-L4"),
			want: allPass(map[string]string{
				"cpu-1":        noGPUs,
				"t4-1":         unresolvable + `pod asks for GPU model workbench.dev/gpu-model="NVIDIA-L4"; node has Tesla-T4`,
				"a100-1":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model="NVIDIA-L4"; node has NVIDIA-A100-SXM4-80GB`,
				"a100-2":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model="NVIDIA-L4"; node has NVIDIA-A100-SXM4-80GB`,
				"h100-1":       unresolvable + `pod asks for GPU model workbench.dev/gpu-model="NVIDIA-L4"; node has NVIDIA-H100-80GB-HBM3`,
				"unlabelled-1": unresolvable + `pod asks for GPU model workbench.dev/gpu-model="NVIDIA-L4"; node has no nvidia.com/gpu.product label`,
			}),
		},
		{
			name: "minimum memory keeps small GPUs out and is not a model name",
			pod:  withAnnotations(gpuPod("s", "1").Obj(), MinMemoryAnnotation, "40Gi"),
			want: allPass(map[string]string{
				"cpu-1":        noGPUs,
				"t4-1":         unresolvable + "pod asks for workbench.dev/gpu-min-memory=40Gi per GPU; node's Tesla-T4 has 15360 MiB",
				"l4-1":         unresolvable + "pod asks for workbench.dev/gpu-min-memory=40Gi per GPU; node's NVIDIA-L4 has 23034 MiB",
				"h100-1":       specialReject,
				"unlabelled-1": unlabelled,
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testArgs(t, tt.mutate))
			if diff := cmp.Diff(tt.want, h.filterAll(t, tt.pod)); diff != "" {
				t.Errorf("outcomes per node (-want +got):\n%s", diff)
			}
		})
	}
}

var appsDaemonSet = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

func resourceQuantity(n int64) *resource.Quantity {
	return resource.NewQuantity(n, resource.DecimalSI)
}

var cmpIgnoreTypeMeta = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TypeMeta" }, cmp.Ignore())
