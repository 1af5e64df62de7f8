package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

// Fragmentation workload: fill 8-GPU nodes with a seeded mix of 1-, 2- and 4-GPU sessions, then
// count how many 8-GPU requests still fit. Same nodes, same pods, same order for both profiles.
const (
	fragNodes    = 40
	fragFill     = 0.55 // of all GPUs, requested by the sessions
	fragSeed     = 20261123
	fragLarge    = 40 // 8-GPU requests offered after the fill
	decisionWait = 3 * time.Minute
)

func fragmentationSessions() []int64 {
	rng := rand.New(rand.NewPCG(fragSeed, 0))
	target := int64(float64(fragNodes*8) * fragFill)
	var sizes []int64
	for total := int64(0); total < target; {
		var g int64
		switch r := rng.IntN(10); {
		case r < 5:
			g = 1
		case r < 8:
			g = 2
		default:
			g = 4
		}
		sizes = append(sizes, g)
		total += g
	}
	return sizes
}

func TestGPUFragmentation(t *testing.T) {
	cp := controlPlane(t)
	sessions := fragmentationSessions()
	type result struct {
		SessionsPlaced   int     `json:"sessionsPlaced"`
		Sessions         int     `json:"sessions"`
		LargePlaced      int     `json:"eightGPURequestsPlaced"`
		LargeOffered     int     `json:"eightGPURequestsOffered"`
		IdleNodesAtStart int     `json:"idleGPUNodesAfterFill"`
		Seconds          float64 `json:"seconds"`
	}
	results := map[string]result{}
	for i, p := range comparedProfiles(t) {
		start := time.Now()
		ns := fmt.Sprintf("frag-%d", i)
		ensureNamespace(t, cp.Client, ns)
		// The run's pods select the run's nodes, whatever else the cluster holds.
		runLabel := map[string]string{"bench.workbench.dev/run": ns}
		var nodes []*corev1.Node
		for n := range fragNodes {
			node := benchNode(fmt.Sprintf("frag-%d-%02d", i, n), "NVIDIA-A100-SXM4-80GB", "64", 8)
			node.Labels["bench.workbench.dev/run"] = ns
			nodes = append(nodes, node)
		}
		ctx := context.Background()
		createAll(t, nodes, func(n *corev1.Node) error {
			_, err := cp.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
			return err
		})
		stop := startScheduler(t, cp, p.config)
		// Sessions arrive one by one, as users start them.
		for j, g := range sessions {
			pod := benchPod(ns, fmt.Sprintf("session-%03d", j), g)
			pod.Spec.NodeSelector = runLabel
			_, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			must(t, err)
		}
		fill, err := sandbox.WaitForDecisions(ctx, cp.Client, ns, app.SchedulerName, len(sessions), decisionWait)
		must(t, err)
		used := map[string]int64{}
		placed := 0
		for k, o := range fill {
			if o.Node != "" {
				placed++
				used[o.Node] += sessions[podIndex(t, fill[k].Pod.Name)]
			}
		}
		idle := fragNodes - len(used)

		var large []*corev1.Pod
		for j := range fragLarge {
			pod := benchPod(ns, fmt.Sprintf("large-%02d", j), 8)
			pod.Spec.NodeSelector = runLabel
			large = append(large, pod)
		}
		createAll(t, large, func(p *corev1.Pod) error {
			_, err := cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			return err
		})
		all, err := sandbox.WaitForDecisions(ctx, cp.Client, ns, app.SchedulerName, len(sessions)+fragLarge, decisionWait)
		must(t, err)
		largePlaced := 0
		for _, o := range all {
			if o.Node != "" && len(o.Pod.Name) > 6 && o.Pod.Name[:6] == "large-" {
				largePlaced++
			}
		}
		stop()
		cleanup(t, cp.Client, ns, nodes)
		results[p.name] = result{placed, len(sessions), largePlaced, fragLarge, idle, time.Since(start).Seconds()}
		t.Logf("%-16s sessions placed %d/%d, idle GPU nodes after fill %d, 8-GPU requests placed %d/%d",
			p.name, placed, len(sessions), idle, largePlaced, fragLarge)
	}
	up, wb := results["upstream-default"], results["workbench"]
	ratio := "inf"
	if up.LargePlaced > 0 {
		ratio = fmt.Sprintf("%.2f", float64(wb.LargePlaced)/float64(up.LargePlaced))
	}
	t.Logf("8-GPU requests placed: workbench %d, upstream %d, ratio %s (target >= 2)", wb.LargePlaced, up.LargePlaced, ratio)
	writeResult(t, "gpu-fragmentation", map[string]any{
		"nodes": fragNodes, "gpusPerNode": 8, "fillFraction": fragFill, "seed": fragSeed,
		"profiles": results, "ratio": ratio,
	})
}

func podIndex(t testing.TB, name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "session-%d", &i); err != nil {
		t.Fatalf("unexpected pod %s", name)
	}
	return i
}
