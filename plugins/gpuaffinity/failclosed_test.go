package gpuaffinity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

// failClosedCluster holds one node per way of being a GPU node while the device plugin reports
// no GPUs, a new node GPU Feature Discovery has not labelled yet, and a CPU node.
func failClosedCluster() []*v1.Node {
	a100Labels := map[string]string{"nvidia.com/gpu.product": a100, "nvidia.com/gpu.memory": "81920"}
	// The device plugin restarts, or every GPU is unhealthy: capacity stays, allocatable is 0.
	restarting := extNode("restarting", map[v1.ResourceName]string{gpu: "8"}, a100Labels)
	restarting.Status.Allocatable[gpu] = *resourceQuantity(0)
	// Written by something other than the kubelet, which keeps the keys of both equal.
	capacityOnly := extNode("capacity-only", map[v1.ResourceName]string{gpu: "8"}, nil)
	delete(capacityOnly.Status.Allocatable, gpu)
	return []*v1.Node{
		extNode("cpu", nil, nil),
		restarting,
		capacityOnly,
		// A kubelet restart zeroes extended resources until device plugins register again.
		extNode("rebooted", map[v1.ResourceName]string{gpu: "0"}, a100Labels),
		// The device plugin is gone: GFD's labels remain.
		extNode("product-label-only", nil, a100Labels),
		extNode("count-label-only", nil, map[string]string{"nvidia.com/gpu.count": "8"}),
		extNode("configured-label", nil, map[string]string{"example.com/accelerator": "gpu"}),
		// A new node before GFD has run.
		extNode("new-unlabelled", map[v1.ResourceName]string{gpu: "8"}, nil),
	}
}

func TestGPUNodesAreRecognisedFailingClosed(t *testing.T) {
	withConfiguredLabel := func(a *configv1.GPUAffinityArgs) { a.GPUNodeLabels = []string{"example.com/accelerator"} }
	noGPUs := unresolvable + "node has no allocatable nvidia.com/gpu"
	tests := []struct {
		name   string
		mutate func(*configv1.GPUAffinityArgs)
		pod    *v1.Pod
		want   map[string]string
	}{
		{
			name:   "a CPU pod is kept off every kind of GPU node",
			mutate: withConfiguredLabel,
			pod:    cpuPod("notebook").Obj(),
			want: map[string]string{
				"cpu":                "",
				"restarting":         cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"capacity-only":      cpuPodReject("nvidia.com/gpu with 0 allocatable, model unlabelled"),
				"rebooted":           cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"product-label-only": cpuPodReject("label nvidia.com/gpu.product, " + a100),
				"count-label-only":   cpuPodReject("label nvidia.com/gpu.count, model unlabelled"),
				"configured-label":   cpuPodReject("label example.com/accelerator, model unlabelled"),
				"new-unlabelled":     cpuPodReject("8 nvidia.com/gpu, model unlabelled"),
			},
		},
		{
			name: "a label marks GPU nodes only when configured",
			pod:  cpuPod("notebook").Obj(),
			want: map[string]string{
				"cpu":                "",
				"restarting":         cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"capacity-only":      cpuPodReject("nvidia.com/gpu with 0 allocatable, model unlabelled"),
				"rebooted":           cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"product-label-only": cpuPodReject("label nvidia.com/gpu.product, " + a100),
				"count-label-only":   cpuPodReject("label nvidia.com/gpu.count, model unlabelled"),
				"configured-label":   "",
				"new-unlabelled":     cpuPodReject("8 nvidia.com/gpu, model unlabelled"),
			},
		},
		{
			name:   "a generic GPU pod takes no node without allocatable GPUs, nor the unlabelled one",
			mutate: withConfiguredLabel,
			pod:    gpuPod("session", "1").Obj(),
			want: map[string]string{
				"cpu":                noGPUs,
				"restarting":         noGPUs,
				"capacity-only":      noGPUs,
				"rebooted":           noGPUs,
				"product-label-only": noGPUs,
				"count-label-only":   noGPUs,
				"configured-label":   noGPUs,
				"new-unlabelled":     unresolvable + "node has GPUs but no nvidia.com/gpu.product label yet; a GPU node takes no GPU pods until its model is labelled",
			},
		},
		{
			name: "a pod naming a model is told the unlabelled node lacks the label",
			pod:  withAnnotations(gpuPod("session", "1").Obj(), ModelAnnotation, "a100"),
			want: map[string]string{
				"cpu":                noGPUs,
				"restarting":         noGPUs,
				"capacity-only":      noGPUs,
				"rebooted":           noGPUs,
				"product-label-only": noGPUs,
				"count-label-only":   noGPUs,
				"configured-label":   noGPUs,
				"new-unlabelled":     unresolvable + `pod asks for GPU model workbench.dev/gpu-model="a100"; node has no nvidia.com/gpu.product label`,
			},
		},
		{
			name:   "genericPodsOnUnlabelledGPUNodes opens unlabelled nodes to generic GPU pods",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GenericPodsOnUnlabelledGPUNodes = true },
			pod:    gpuPod("session", "1").Obj(),
			want: map[string]string{
				"cpu":                noGPUs,
				"restarting":         noGPUs,
				"capacity-only":      noGPUs,
				"rebooted":           noGPUs,
				"product-label-only": noGPUs,
				"count-label-only":   noGPUs,
				"configured-label":   noGPUs,
				"new-unlabelled":     "",
			},
		},
		{
			name:   "genericPodsOnUnlabelledGPUNodes keeps CPU pods off unlabelled nodes",
			mutate: func(a *configv1.GPUAffinityArgs) { a.GenericPodsOnUnlabelledGPUNodes = true },
			pod:    cpuPod("notebook").Obj(),
			want: map[string]string{
				"cpu":                "",
				"restarting":         cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"capacity-only":      cpuPodReject("nvidia.com/gpu with 0 allocatable, model unlabelled"),
				"rebooted":           cpuPodReject("nvidia.com/gpu with 0 allocatable, " + a100),
				"product-label-only": cpuPodReject("label nvidia.com/gpu.product, " + a100),
				"count-label-only":   cpuPodReject("label nvidia.com/gpu.count, model unlabelled"),
				"configured-label":   "",
				"new-unlabelled":     cpuPodReject("8 nvidia.com/gpu, model unlabelled"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newClusterHarness(t, testArgs(t, tt.mutate), failClosedCluster(), nil)
			if diff := cmp.Diff(tt.want, h.filterAll(t, tt.pod)); diff != "" {
				t.Errorf("outcomes per node (-want +got):\n%s", diff)
			}
		})
	}
}
