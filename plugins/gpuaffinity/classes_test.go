package gpuaffinity

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

const (
	mig1g  = v1.ResourceName("nvidia.com/mig-1g.10gb")
	mig3g  = v1.ResourceName("nvidia.com/mig-3g.40gb")
	shared = v1.ResourceName("nvidia.com/gpu.shared")
	amdGPU = v1.ResourceName("amd.com/gpu")
	i915   = v1.ResourceName("gpu.intel.com/i915")
)

// extNode is a node whose capacity and allocatable hold these extended resources.
func extNode(name string, ext map[v1.ResourceName]string, labels map[string]string) *v1.Node {
	res := map[v1.ResourceName]string{"cpu": "64", "memory": "512Gi", "pods": "110"}
	for k, v := range ext {
		res[k] = v
	}
	w := st.MakeNode().Name(name).Capacity(res)
	for k, v := range labels {
		w = w.Label(k, v)
	}
	n := w.Obj()
	// The wrapper shares one map between both; tests change allocatable alone.
	n.Status.Allocatable = n.Status.Capacity.DeepCopy()
	return n
}

func unitPod(name string, r v1.ResourceName, n string) *st.PodWrapper {
	return st.MakePod().Namespace("ml").Name(name).Req(map[v1.ResourceName]string{"cpu": "1", r: n})
}

const a100 = "NVIDIA-A100-SXM4-80GB"

// classCluster: a whole-GPU A100, an A100 in MIG mixed mode with 1g.10gb slices (and GFD's
// memory label for them), an A100 with 3g.40gb slices but no memory label for them, a
// time-sliced T4, an AMD node and an Intel node (neither with the NVIDIA product label), and
// a CPU node.
func classCluster() []*v1.Node {
	return []*v1.Node{
		extNode("cpu", nil, nil),
		extNode("whole", map[v1.ResourceName]string{gpu: "8"},
			map[string]string{"nvidia.com/gpu.product": a100, "nvidia.com/gpu.memory": "81920"}),
		extNode("mig", map[v1.ResourceName]string{mig1g: "7"},
			map[string]string{"nvidia.com/gpu.product": a100, "nvidia.com/gpu.memory": "81920", "nvidia.com/mig-1g.10gb.memory": "9728"}),
		extNode("mig-unlabelled-memory", map[v1.ResourceName]string{mig3g: "2"},
			map[string]string{"nvidia.com/gpu.product": a100, "nvidia.com/gpu.memory": "81920"}),
		extNode("shared", map[v1.ResourceName]string{shared: "4"},
			map[string]string{"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.memory": "15360"}),
		extNode("amd", map[v1.ResourceName]string{amdGPU: "8"}, nil),
		extNode("intel", map[v1.ResourceName]string{i915: "1"}, nil),
	}
}

func TestGPUResourceClasses(t *testing.T) {
	pass := map[string]string{"cpu": "", "whole": "", "mig": "", "mig-unlabelled-memory": "", "shared": "", "amd": "", "intel": ""}
	allNo := func(r v1.ResourceName) map[string]string {
		out := map[string]string{}
		for n := range pass {
			out[n] = unresolvable + "node has no allocatable " + string(r)
		}
		return out
	}
	merge := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	only := func(node string, others map[string]string) map[string]string {
		return merge(others, map[string]string{node: ""})
	}
	unlabelled := unresolvable + "node has GPUs but no nvidia.com/gpu.product label yet; a GPU node takes no GPU pods until its model is labelled"
	tests := []struct {
		name   string
		mutate func(*configv1.GPUAffinityArgs)
		pod    *v1.Pod
		want   map[string]string
	}{
		{
			name: "a MIG-slice session is a GPU pod and fits only where its slice is",
			pod:  unitPod("slice", mig1g, "1").Obj(),
			want: only("mig", allNo(mig1g)),
		},
		{
			name: "a shared-GPU session is a GPU pod and fits only on shared GPUs",
			pod:  unitPod("timesliced", shared, "1").Obj(),
			want: only("shared", allNo(shared)),
		},
		{
			name: "a whole-GPU session does not take MIG slices or shared GPUs",
			pod:  gpuPod("whole", "1").Obj(),
			want: only("whole", allNo(gpu)),
		},
		{
			name: "CPU pods are kept off MIG-only, shared-only, AMD and Intel nodes",
			pod:  cpuPod("notebook").Obj(),
			want: merge(pass, map[string]string{
				"whole":                 cpuPodReject("8 nvidia.com/gpu, " + a100),
				"mig":                   cpuPodReject("7 nvidia.com/mig-1g.10gb, " + a100),
				"mig-unlabelled-memory": cpuPodReject("2 nvidia.com/mig-3g.40gb, " + a100),
				"shared":                cpuPodReject("4 nvidia.com/gpu.shared, Tesla-T4-SHARED"),
				"amd":                   cpuPodReject("8 amd.com/gpu, model unlabelled"),
				"intel":                 cpuPodReject("1 gpu.intel.com/i915, model unlabelled"),
			}),
		},
		{
			name: "minimum memory of a slice is compared with the slice's own memory label",
			pod:  withAnnotations(unitPod("slice", mig1g, "1").Obj(), MinMemoryAnnotation, "9Gi"),
			want: only("mig", allNo(mig1g)),
		},
		{
			name: "a slice smaller than the minimum memory is refused, not the 80 GB of its GPU",
			pod:  withAnnotations(unitPod("slice", mig1g, "1").Obj(), MinMemoryAnnotation, "10Gi"),
			want: merge(allNo(mig1g), map[string]string{
				"mig": unresolvable + "pod asks for workbench.dev/gpu-min-memory=10Gi per GPU; node's nvidia.com/mig-1g.10gb slice (" + a100 + ") has 9728 MiB",
			}),
		},
		{
			name: "a slice without a memory label is refused naming the resource and the label",
			pod:  withAnnotations(unitPod("slice", mig3g, "1").Obj(), MinMemoryAnnotation, "20Gi"),
			want: merge(allNo(mig3g), map[string]string{
				"mig-unlabelled-memory": unresolvable + `pod asks for workbench.dev/gpu-min-memory=20Gi per GPU and requests nvidia.com/mig-3g.40gb; ` +
					`node has no valid nvidia.com/mig-3g.40gb.memory label ("") giving that slice's memory`,
			}),
		},
		{
			name: "a shared GPU has the memory of its GPU",
			pod:  withAnnotations(unitPod("timesliced", shared, "1").Obj(), MinMemoryAnnotation, "16Gi"),
			want: merge(allNo(shared), map[string]string{
				"shared": unresolvable + "pod asks for workbench.dev/gpu-min-memory=16Gi per GPU; node's Tesla-T4-SHARED has 15360 MiB",
			}),
		},
		{
			name: "an AMD pod is a GPU pod; the AMD node without the product label takes none by default",
			pod:  unitPod("rocm", amdGPU, "1").Obj(),
			want: merge(allNo(amdGPU), map[string]string{"amd": unlabelled}),
		},
		{
			name:   "with genericPodsOnUnlabelledGPUNodes, AMD and Intel pods land on their nodes",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GenericPodsOnUnlabelledGPUNodes = true },
			pod:    unitPod("oneapi", i915, "1").Obj(),
			want:   only("intel", allNo(i915)),
		},
		{
			// The old default: slices are no GPUs, but the product label still marks GPU nodes.
			name:   "with gpuResourceNames [nvidia.com/gpu] a MIG pod is a CPU pod",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GPUResourceNames = []string{"nvidia.com/gpu"} },
			pod:    unitPod("slice", mig1g, "1").Obj(),
			want: merge(pass, map[string]string{
				"whole":                 cpuPodReject("8 nvidia.com/gpu, " + a100),
				"mig":                   cpuPodReject("label nvidia.com/gpu.product, " + a100),
				"mig-unlabelled-memory": cpuPodReject("label nvidia.com/gpu.product, " + a100),
				"shared":                cpuPodReject("label nvidia.com/gpu.product, Tesla-T4-SHARED"),
			}),
		},
		{
			name: "a pattern of one profile family makes only its slices GPUs",
			mutate: func(a *configv1.GPUAffinityArgs) {
				a.GPUResourceNames = []string{"nvidia.com/gpu", "nvidia.com/mig-3g.*"}
				a.ProductLabel = "example.com/gpu-model"
			},
			pod: cpuPod("notebook").Obj(),
			want: merge(pass, map[string]string{
				"whole":                 cpuPodReject("8 nvidia.com/gpu, model unlabelled"),
				"mig-unlabelled-memory": cpuPodReject("2 nvidia.com/mig-3g.40gb, model unlabelled"),
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newClusterHarness(t, testArgs(t, tt.mutate), classCluster(), nil)
			if diff := cmp.Diff(tt.want, h.filterAll(t, tt.pod)); diff != "" {
				t.Errorf("outcomes per node (-want +got):\n%s", diff)
			}
		})
	}
}

// Each resource is its own packing unit: a MIG pod packs by free slices of its profile, a
// whole-GPU pod by free whole GPUs, and neither adds the other's.
func TestScorePacksEachUnitApart(t *testing.T) {
	labels := map[string]string{"nvidia.com/gpu.product": a100}
	nodes := []*v1.Node{
		// 4 whole GPUs free, 1 of 7 slices free.
		extNode("mixed", map[v1.ResourceName]string{gpu: "4", mig1g: "7"}, labels),
		// 3 of 7 slices free.
		extNode("mig", map[v1.ResourceName]string{mig1g: "7"}, labels),
		// 5 of 8 GPUs free.
		extNode("whole", map[v1.ResourceName]string{gpu: "8"}, labels),
	}
	running := []*v1.Pod{
		unitPod("s1", mig1g, "6").Node("mixed").Obj(),
		unitPod("s2", mig1g, "4").Node("mig").Obj(),
		gpuPod("g1", "3").Node("whole").Obj(),
	}
	tests := []struct {
		name       string
		pod        *v1.Pod
		candidates []string
		want       map[string]int64
	}{
		// Summing all units would make mixed 4 free after and mig 2: mig would win.
		{"a slice goes where fewest slices stay free", unitPod("s", mig1g, "1").Obj(), []string{"mixed", "mig"},
			map[string]int64{"mixed": 100, "mig": 0}},
		// Summing would tie them at 4 free after.
		{"a whole GPU goes where fewest whole GPUs stay free", gpuPod("g", "1").Obj(), []string{"mixed", "whole"},
			map[string]int64{"mixed": 100, "whole": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newClusterHarness(t, testArgs(t, nil), nodes, running)
			ctx := context.Background()
			state := framework.NewCycleState()
			var infos []fwk.NodeInfo
			for _, n := range tt.candidates {
				infos = append(infos, h.infos[n])
			}
			if s := h.pl.PreScore(ctx, state, tt.pod, infos); !s.IsSuccess() {
				t.Fatalf("PreScore: %v", s)
			}
			var scores fwk.NodeScoreList
			for _, ni := range infos {
				score, s := h.pl.Score(ctx, state, tt.pod, ni)
				if !s.IsSuccess() {
					t.Fatal(s)
				}
				scores = append(scores, fwk.NodeScore{Name: ni.Node().Name, Score: score})
			}
			if s := h.pl.NormalizeScore(ctx, state, tt.pod, scores); !s.IsSuccess() {
				t.Fatal(s)
			}
			got := map[string]int64{}
			for _, s := range scores {
				got[s.Name] = s.Score
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("scores (-want +got):\n%s", diff)
			}
		})
	}
}
