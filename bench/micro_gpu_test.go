package bench

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gpuaffinity"
)

// Micro benchmark at 7,500 nodes and 200,000 pods: one pod's Filter over every node plus Score
// over the feasible ones, for GPUAffinity and, in the same run, upstream's NodeResourcesFit
// (which every profile runs) as the yardstick. Run with make bench-micro.
const (
	microNodes    = 7500
	microGPUEvery = 5 // one node in five has GPUs
	microPods     = 200_000
)

type filterScorer interface {
	fwk.PreFilterPlugin
	fwk.FilterPlugin
	fwk.PreScorePlugin
	fwk.ScorePlugin
}

func microSnapshot() (*cache.Snapshot, []fwk.NodeInfo) {
	products := []string{"Tesla-T4", "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}
	var nodes []*corev1.Node
	for i := range microNodes {
		if i%microGPUEvery == 0 {
			nodes = append(nodes, benchNode(fmt.Sprintf("n-%04d", i), products[i%len(products)], "64", 8))
		} else {
			nodes = append(nodes, benchNode(fmt.Sprintf("n-%04d", i), "", "64", 0))
		}
	}
	pods := make([]*corev1.Pod, 0, microPods)
	for i := range microPods {
		n := i % microNodes
		gpus := int64(0)
		if n%microGPUEvery == 0 && i%(microNodes*4) < microNodes {
			gpus = 1
		}
		p := benchPod("ns", fmt.Sprintf("p-%06d", i), gpus)
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resourceMilli(100)
		p.Spec.NodeName = nodes[n].Name
		pods = append(pods, p)
	}
	snapshot := cache.NewSnapshot(pods, nodes)
	infos, _ := snapshot.NodeInfos().List()
	return snapshot, infos
}

func microPlugins(b *testing.B, snapshot *cache.Snapshot) map[string]filterScorer {
	_, ctx := ktesting.NewTestContext(b)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(snapshot))
	must(b, err)
	fit, err := noderesources.NewFit(ctx, &schedconfig.NodeResourcesFitArgs{ScoringStrategy: &schedconfig.ScoringStrategy{
		Type:      schedconfig.LeastAllocated,
		Resources: []schedconfig.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
	}}, fh, feature.Features{})
	must(b, err)
	gpu, err := gpuaffinity.New(ctx, &config.GPUAffinityArgs{
		GPUResourceNames: []string{"nvidia.com/gpu"}, ProductLabel: "nvidia.com/gpu.product", MemoryLabel: "nvidia.com/gpu.memory",
		SKUs:              []config.GPUSKU{{Name: "h100", Products: []string{"NVIDIA-H100-80GB-HBM3"}, Special: true}},
		CPUPodsOnGPUNodes: config.CPUPodsOnGPUNodesDeny, GPUScoring: config.GPUScoringBinPack,
	}, fh)
	must(b, err)
	return map[string]filterScorer{"NodeResourcesFit": fit.(filterScorer), "GPUAffinity": gpu.(filterScorer)}
}

// filterScoreOnce runs the plugin's cycle for one pod and returns how many nodes passed.
func filterScoreOnce(b *testing.B, pl filterScorer, pod *corev1.Pod, nodes []fwk.NodeInfo) int {
	ctx := context.Background()
	state := framework.NewCycleState()
	if _, s := pl.PreFilter(ctx, state, pod, nodes); !s.IsSuccess() && !s.IsSkip() {
		b.Fatal(s)
	}
	feasible := nodes[:0:0]
	for _, n := range nodes {
		if s := pl.Filter(ctx, state, pod, n); s.IsSuccess() {
			feasible = append(feasible, n)
		}
	}
	scoreAll(ctx, b, pl, state, pod, feasible)
	return len(feasible)
}

// scoreAll runs PreScore, Score on every feasible node and NormalizeScore, as a cycle does.
func scoreAll(ctx context.Context, b *testing.B, pl filterScorer, state fwk.CycleState, pod *corev1.Pod, feasible []fwk.NodeInfo) {
	if s := pl.PreScore(ctx, state, pod, feasible); s.IsSkip() {
		return
	} else if !s.IsSuccess() {
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
	if ext := pl.ScoreExtensions(); ext != nil {
		ext.NormalizeScore(ctx, state, pod, scores)
	}
}

func BenchmarkFilterScore7500Nodes(b *testing.B) {
	snapshot, nodes := microSnapshot()
	plugins := microPlugins(b, snapshot)
	pods := map[string]*corev1.Pod{"gpu-pod": benchPod("ns", "incoming-gpu", 1), "cpu-pod": benchPod("ns", "incoming-cpu", 0)}
	for _, podKind := range sortedKeys(pods) {
		nsPerOp := map[string]float64{}
		for _, name := range []string{"NodeResourcesFit", "GPUAffinity"} {
			b.Run(podKind+"/"+name, func(b *testing.B) {
				for b.Loop() {
					filterScoreOnce(b, plugins[name], pods[podKind], nodes)
				}
				nsPerOp[name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
		if fit, gpu := nsPerOp["NodeResourcesFit"], nsPerOp["GPUAffinity"]; fit > 0 && gpu > 0 {
			fmt.Printf("GPUAffinity, %s, 7,500 nodes / 200,000 pods: %.2f ms/pod, %.2fx upstream's NodeResourcesFit (%.2f ms/pod)\n",
				podKind, gpu/1e6, gpu/fit, fit/1e6)
		}
	}
}
