package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-base/metrics/legacyregistry"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gpuaffinity"
)

const gpuResource = corev1.ResourceName("nvidia.com/gpu")

func gpuTestNode(name, product string, gpus int64) *corev1.Node {
	n := readyNode(name, map[corev1.ResourceName]string{"cpu": "32", "memory": "256Gi", "pods": "110"})
	if gpus > 0 {
		q := *resource.NewQuantity(gpus, resource.DecimalSI)
		n.Status.Allocatable[gpuResource], n.Status.Capacity[gpuResource] = q, q
		n.Labels["nvidia.com/gpu.product"] = product
		n.Labels["nvidia.com/gpu.memory"] = "81920"
	}
	return n
}

func workbenchPod(ns, name string, gpus string, annotations map[string]string) *corev1.Pod {
	resources := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"),
	}}
	if gpus != "" {
		// Extended resources must be given as limits; requests default to them.
		resources.Limits = corev1.ResourceList{gpuResource: resource.MustParse(gpus)}
	}
	p := st.MakePod().Namespace(ns).Name(name).SchedulerName(app.SchedulerName).Obj()
	p.Spec.Containers = []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10", Resources: resources}}
	p.Annotations = annotations
	return p
}

// The shipped config's GPUAffinity against a real apiserver: CPU pods avoid GPU nodes, generic
// GPU pods avoid the special SKU, a pod naming it lands on it, and a bad annotation leaves that
// pod unschedulable with an event while the others schedule.
func TestGPUAffinityWithShippedConfig(t *testing.T) {
	startScheduler(t, nil)
	ns := testNamespace(t)
	createNodes(t,
		gpuTestNode("it-gpu-cpu", "", 0),
		gpuTestNode("it-gpu-a100", "NVIDIA-A100-SXM4-80GB", 8),
		gpuTestNode("it-gpu-h100", "NVIDIA-H100-80GB-HBM3", 8),
	)
	createPod(t, workbenchPod(ns, "bad-model", "1", map[string]string{gpuaffinity.ModelAnnotation: "h200"}))
	createPod(t, workbenchPod(ns, "cpu-session", "", nil))
	createPod(t, workbenchPod(ns, "generic-gpu", "1", nil))
	createPod(t, workbenchPod(ns, "names-h100", "8", map[string]string{gpuaffinity.ModelAnnotation: "h100"}))

	for pod, want := range map[string]string{"cpu-session": "it-gpu-cpu", "generic-gpu": "it-gpu-a100", "names-h100": "it-gpu-h100"} {
		if got := waitForNode(t, ns, pod, 30*time.Second); got != want {
			t.Errorf("%s bound to %s, want %s", pod, got, want)
		}
	}

	wantMsg := `annotation workbench.dev/gpu-model="h200" names unknown GPU model "h200"; known SKUs: t4, a100, h100`
	var condition *corev1.PodCondition
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, "bad-model", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for i, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				condition = &pod.Status.Conditions[i]
			}
		}
		return condition != nil, nil
	})
	if err != nil {
		t.Fatalf("bad-model has no PodScheduled=False condition: %v", err)
	}
	if condition.Reason != corev1.PodReasonUnschedulable || !strings.Contains(condition.Message, wantMsg) {
		t.Errorf("condition = %s %q, want Unschedulable with %q", condition.Reason, condition.Message, wantMsg)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "bad-model" && e.Reason == gpuaffinity.EventReasonInvalidGPURequest && strings.Contains(e.Note, wantMsg) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s event for bad-model: %v", gpuaffinity.EventReasonInvalidGPURequest, err)
	}

	// Fixing the annotation requeues the pod (queueing hint on its own update) and it binds.
	patch := []byte(`{"metadata":{"annotations":{"` + gpuaffinity.ModelAnnotation + `":"a100"}}}`)
	if _, err := cp.Client.CoreV1().Pods(ns).Patch(context.Background(), "bad-model", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitForNode(t, ns, "bad-model", 30*time.Second); got != "it-gpu-a100" {
		t.Errorf("fixed pod bound to %s, want it-gpu-a100", got)
	}

	// A generic pod asking for a whole node that no node has free: GPUAffinity's PreFilter finds
	// no node that can hold it and does not narrow the cycle, so Filter runs on every node and
	// counts its reasons (the CPU node: no_gpus; the H100: special_sku). A GPU pod that fits is
	// narrowed to nodes Filter accepts, and counts none.
	createPod(t, workbenchPod(ns, "too-big", "8", nil))

	// What /metrics serves: the scheduler registers into the process's legacy registry. The
	// gauges read the scheduler's informer cache, which may trail the apiserver, and are
	// recomputed at most every 10 s: poll for longer than that.
	wantAtLeastOne := []string{
		`workbench_gpuaffinity_filter_rejections_total{reason="invalid_request"}`,
		`workbench_gpuaffinity_filter_rejections_total{reason="cpu_pod_on_gpu_node"}`,
		`workbench_gpuaffinity_filter_rejections_total{reason="special_sku"}`,
		`workbench_gpuaffinity_filter_rejections_total{reason="no_gpus"}`,
	}
	wantExactly := map[string]float64{
		`workbench_gpu_free{product="NVIDIA-H100-80GB-HBM3"}`: 0,
		`workbench_gpu_free{product="NVIDIA-A100-SXM4-80GB"}`: 6,
		`workbench_gpu_free_fragmented`:                       6,
		`workbench_gpu_free_on_idle_nodes`:                    0,
	}
	waitForMetrics(t, wantAtLeastOne, wantExactly)
}

// waitForMetrics polls what /metrics serves (the process's legacy registry, where the in-process
// scheduler registers) until every atLeastOne series is >= 1 and every exactly series equals
// its value. Gauges read informer caches that may trail the apiserver, so it waits 30 s.
func waitForMetrics(t *testing.T, atLeastOne []string, exactly map[string]float64) {
	t.Helper()
	var problems []string
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		text := scrape(t)
		problems = nil
		for _, series := range atLeastOne {
			if v, ok := metricValue(text, series); !ok || v < 1 {
				problems = append(problems, fmt.Sprintf("%s = %v (found %v), want >= 1", series, v, ok))
			}
		}
		for series, want := range exactly {
			if v, ok := metricValue(text, series); !ok || v != want {
				problems = append(problems, fmt.Sprintf("%s = %v (found %v), want %v", series, v, ok, want))
			}
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Errorf("metrics: %s", strings.Join(problems, "; "))
	}
}

// metricValue finds one series in text-format metrics.
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// scrape renders the legacy registry in the text format /metrics uses.
func scrape(t *testing.T) string {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// unitPod is a workbench pod requesting n of one extended resource (a MIG slice, a shared GPU).
func unitPod(ns, name string, r corev1.ResourceName, n string, annotations map[string]string) *corev1.Pod {
	p := workbenchPod(ns, name, "", annotations)
	q := resource.MustParse(n)
	p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{r: q}
	p.Spec.Containers[0].Resources.Requests[r] = q
	return p
}

// waitForUnschedulable waits for the pod's PodScheduled=False condition to say want and fails
// if it is bound meanwhile.
func waitForUnschedulable(t *testing.T, ns, name, want string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pod.Spec.NodeName != "" {
			return false, fmt.Errorf("bound to %s", pod.Spec.NodeName)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				last = c.Message
			}
		}
		return strings.Contains(last, want), nil
	})
	if err != nil {
		t.Errorf("%s: want PodScheduled=False saying %q, last message %q: %v", name, want, last, err)
	}
}

// The shipped config on a mixed cluster: a MIG-slice session, a shared-GPU session and a
// whole-GPU session each land on the one node that serves them, and a CPU session is kept off
// a GPU node whose allocatable GPUs dropped to 0 while its product label stays.
func TestGPUAffinityMIGSharedAndWholeGPUs(t *testing.T) {
	startScheduler(t, nil)
	ns := testNamespace(t)
	const (
		mig    = corev1.ResourceName("nvidia.com/mig-1g.10gb")
		shared = corev1.ResourceName("nvidia.com/gpu.shared")
	)
	migNode := gpuTestNode("it-mix-mig", "", 0)
	q := *resource.NewQuantity(7, resource.DecimalSI)
	migNode.Status.Allocatable[mig], migNode.Status.Capacity[mig] = q, q
	// GPU Feature Discovery's labels of a MIG node in the mixed strategy.
	migNode.Labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-80GB"
	migNode.Labels["nvidia.com/gpu.memory"] = "81920"
	migNode.Labels["nvidia.com/mig-1g.10gb.memory"] = "9728"
	sharedNode := gpuTestNode("it-mix-shared", "", 0)
	q = *resource.NewQuantity(4, resource.DecimalSI)
	sharedNode.Status.Allocatable[shared], sharedNode.Status.Capacity[shared] = q, q
	sharedNode.Labels["nvidia.com/gpu.product"] = "Tesla-T4-SHARED"
	sharedNode.Labels["nvidia.com/gpu.memory"] = "15360"
	createNodes(t,
		gpuTestNode("it-mix-cpu", "", 0),
		migNode,
		sharedNode,
		gpuTestNode("it-mix-whole", "NVIDIA-A100-SXM4-80GB", 8),
		gpuTestNode("it-mix-down", "NVIDIA-A100-SXM4-80GB", 8),
	)

	// The device plugin on it-mix-down restarts: allocatable drops to 0, capacity and labels stay.
	down, err := cp.Client.CoreV1().Nodes().Get(context.Background(), "it-mix-down", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	down.Status.Allocatable[gpuResource] = *resource.NewQuantity(0, resource.DecimalSI)
	if _, err := cp.Client.CoreV1().Nodes().UpdateStatus(context.Background(), down, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	createPod(t, unitPod(ns, "mig-session", mig, "1", map[string]string{gpuaffinity.MinMemoryAnnotation: "9Gi"}))
	createPod(t, unitPod(ns, "shared-session", shared, "1", nil))
	createPod(t, workbenchPod(ns, "whole-session", "1", nil))
	createPod(t, workbenchPod(ns, "cpu-session", "", nil))
	pinned := workbenchPod(ns, "cpu-pinned-to-down", "", nil)
	pinned.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "it-mix-down"}
	createPod(t, pinned)

	for pod, want := range map[string]string{
		"mig-session": "it-mix-mig", "shared-session": "it-mix-shared", "whole-session": "it-mix-whole", "cpu-session": "it-mix-cpu",
	} {
		if got := waitForNode(t, ns, pod, 30*time.Second); got != want {
			t.Errorf("%s bound to %s, want %s", pod, got, want)
		}
	}
	waitForUnschedulable(t, ns, "cpu-pinned-to-down",
		"node is a GPU node (nvidia.com/gpu with 0 allocatable, NVIDIA-A100-SXM4-80GB) and the pod requests no GPU")
}
