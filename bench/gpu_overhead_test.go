package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

// Overhead of GPUAffinity at 5,000 nodes: the shipped profile against the same profile without
// our plugin, on one mixed workload (70% CPU pods, 30% one-GPU pods), in the order A B B A so
// that warm-up and linear drift fall on both sides equally.
const (
	overheadCPUNodes = 4000
	overheadGPUNodes = 1000
	overheadPods     = 3000
	overheadRounds   = 2
)

// gpuPercent is the share of one-GPU pods in the workload (WORKBENCH_BENCH_GPU_PERCENT, default 30).
func gpuPercent() int {
	if v, err := strconv.Atoi(os.Getenv("WORKBENCH_BENCH_GPU_PERCENT")); err == nil {
		return v
	}
	return 30
}

func TestGPUAffinityAttemptOverhead(t *testing.T) {
	cp := controlPlane(t)
	ctx := context.Background()
	products := []string{"Tesla-T4", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}
	var nodes []*corev1.Node
	for i := range overheadCPUNodes {
		nodes = append(nodes, benchNode(fmt.Sprintf("oh-cpu-%04d", i), "", "32", 0))
	}
	for i := range overheadGPUNodes {
		nodes = append(nodes, benchNode(fmt.Sprintf("oh-gpu-%04d", i), products[i%len(products)], "64", 8))
	}
	start := time.Now()
	createAll(t, nodes, func(n *corev1.Node) error {
		_, err := cp.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		return err
	})
	t.Logf("created %d nodes in %.1fs", len(nodes), time.Since(start).Seconds())

	type run struct {
		Profile         string  `json:"profile"`
		Round           int     `json:"round"`
		PodsPerSecond   float64 `json:"podsPerSecond"`
		AlgorithmMeanMs float64 `json:"algorithmMeanMs"`
		AlgorithmP50Ms  float64 `json:"algorithmP50Ms"`
		AttemptP50Ms    float64 `json:"attemptP50Ms"`
		AttemptP99Ms    float64 `json:"attemptP99Ms"`
		Scheduled       int     `json:"scheduled"`
		Attempts        uint64  `json:"attempts"`
		// Batches counts OpportunisticBatching outcomes (hint used, not used, no hint).
		Batches map[string]float64 `json:"batchAttempts"`
	}
	var runs []run
	profiles := comparedProfiles(t)
	for round := range overheadRounds {
		order := profiles
		if round%2 == 1 {
			order = slices.Clone(profiles)
			slices.Reverse(order)
		}
		for _, p := range order {
			ns := fmt.Sprintf("oh-%s-%d", p.name, round)
			ensureNamespace(t, cp.Client, ns)
			var pods []*corev1.Pod
			for i := range overheadPods {
				gpus := int64(0)
				if i%100 < gpuPercent() {
					gpus = 1
				}
				pods = append(pods, benchPod(ns, fmt.Sprintf("p-%04d", i), gpus))
			}
			stop := startScheduler(t, cp, p.config)
			algoBefore := readHistogram(t, "scheduler_scheduling_algorithm_duration_seconds")
			attemptBefore := readHistogram(t, "scheduler_scheduling_attempt_duration_seconds")
			batchBefore := readCounters(t, "scheduler_batch_attempts_total", "result")
			pluginBefore := readHistogramSums(t, "scheduler_plugin_execution_duration_seconds", "extension_point", "plugin")
			begin := time.Now()
			createAll(t, pods, func(p *corev1.Pod) error {
				_, err := cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				return err
			})
			outcomes, err := sandbox.WaitForDecisions(ctx, cp.Client, ns, app.SchedulerName, overheadPods, 10*time.Minute)
			must(t, err)
			elapsed := time.Since(begin)
			count, algoMean, algoP50 := readHistogram(t, "scheduler_scheduling_algorithm_duration_seconds").since(algoBefore, 0.5)
			attemptAfter := readHistogram(t, "scheduler_scheduling_attempt_duration_seconds")
			_, _, attemptP50 := attemptAfter.since(attemptBefore, 0.5)
			_, _, attemptP99 := attemptAfter.since(attemptBefore, 0.99)
			stop()
			scheduled := 0
			for _, o := range outcomes {
				if o.Node != "" {
					scheduled++
				}
			}
			batches := counterDelta(readCounters(t, "scheduler_batch_attempts_total", "result"), batchBefore)
			// The framework samples plugin durations in 10% of cycles: these are relative weights.
			pluginSeconds := counterDelta(readHistogramSums(t, "scheduler_plugin_execution_duration_seconds", "extension_point", "plugin"), pluginBefore)
			for _, k := range sortedKeys(pluginSeconds) {
				if pluginSeconds[k] > 0.01 {
					t.Logf("  %-40s %.3fs", k, pluginSeconds[k])
				}
			}
			r := run{p.name, round, float64(overheadPods) / elapsed.Seconds(), algoMean * 1000, algoP50 * 1000, attemptP50 * 1000, attemptP99 * 1000, scheduled, count, batches}
			runs = append(runs, r)
			t.Logf("round %d %-16s %6.1f pods/s, algorithm mean %.2f ms p50 %.2f ms, attempt p50 %.2f ms p99 %.2f ms, %d/%d scheduled, batching %v",
				round, p.name, r.PodsPerSecond, r.AlgorithmMeanMs, r.AlgorithmP50Ms, r.AttemptP50Ms, r.AttemptP99Ms, scheduled, overheadPods, batches)
			zero := int64(0)
			must(t, cp.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}))
		}
	}
	createAll(t, nodes, func(n *corev1.Node) error {
		return cp.Client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
	})
	var sums = map[string][2]float64{}
	for _, r := range runs {
		s := sums[r.Profile]
		s[0] += r.AlgorithmMeanMs
		s[1] += r.AttemptP50Ms
		sums[r.Profile] = s
	}
	up, wb := sums["upstream-default"], sums["workbench"]
	algoOverhead := 100 * (wb[0]/up[0] - 1)
	attemptOverhead := 100 * (wb[1]/up[1] - 1)
	t.Logf("GPUAffinity adds %.1f%% to the mean scheduling-algorithm time and %.1f%% to the attempt p50 (target <= 5%%)", algoOverhead, attemptOverhead)
	writeResult(t, "gpu-affinity-overhead", map[string]any{
		"cpuNodes": overheadCPUNodes, "gpuNodes": overheadGPUNodes, "pods": overheadPods,
		"runs": runs, "algorithmMeanOverheadPercent": algoOverhead, "attemptP50OverheadPercent": attemptOverhead,
	})
}
