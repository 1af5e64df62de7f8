package perf

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
)

// The GPUSharing workload's check: sessions asking for MIG slices, time-sliced GPUs, whole GPUs
// and no GPU, on CPU nodes and on GPU nodes of each kind. The workload waits until each session
// was tried; the check, registered by the prepare hook, waits up to gpuSharingWait more for
// every session to be bound (the cluster has room for all of them), then counts where they went.
// A session left unbound is a placement some plugin refused where the cluster could serve it.

const (
	gpuSharingNamespace = "gpu-sharing"
	gpuKindLabel        = "gpu.workbench.dev/kind"
	gpuSharingWait      = time.Minute
	gpuSharingTag       = "GPUSharing placement"
)

// gpuKinds name what a session asks for and what a node advertises, in the order reports list them.
var gpuKinds = []string{"mig", "shared", "whole", "cpu"}

// gpuSharing is the GPUSharing workload's check, recorded in the run record.
var gpuSharing *perfrun.GPUSharing

// checkGPUSharingAfterRun registers the check, to run after the workload's ops and before
// scheduler_perf stops the scheduler (see checkGPUFragmentationAfterRun).
func checkGPUSharingAfterRun(tCtx ktesting.TContext) {
	tCtx.CleanupCtx(func(tCtx ktesting.TContext) {
		if tCtx.Failed() {
			return
		}
		s, err := settleGPUSharing(tCtx, tCtx.Client(), gpuSharingWait)
		if err != nil {
			tCtx.Errorf("checking GPU sharing: %v", err)
			return
		}
		gpuSharing = s
		fmt.Println(gpuSharingSummary(tCtx.Name(), s))
	})
}

// settleGPUSharing waits until every session is bound or the wait is over, and counts.
func settleGPUSharing(ctx context.Context, c kubernetes.Interface, timeout time.Duration) (*perfrun.GPUSharing, error) {
	var s *perfrun.GPUSharing
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := c.CoreV1().Pods(gpuSharingNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if s, err = countGPUSharing(nodes.Items, pods.Items); err != nil {
			return false, err
		}
		return len(s.Unbound) == 0, nil
	})
	if s != nil && wait.Interrupted(err) {
		err = nil // what is still unbound is the result
	}
	return s, err
}

// nodeGPUKind is the kind of GPU resource a node advertises (allocatable above 0); cpu for none.
func nodeGPUKind(n *v1.Node) string {
	kind := "cpu"
	for name, q := range n.Status.Allocatable {
		if q.Value() <= 0 {
			continue
		}
		switch {
		case strings.HasPrefix(string(name), "nvidia.com/mig-"):
			return "mig"
		case name == "nvidia.com/gpu.shared":
			return "shared"
		case name == gpuResource:
			kind = "whole"
		}
	}
	return kind
}

func countGPUSharing(nodeList []v1.Node, pods []v1.Pod) (*perfrun.GPUSharing, error) {
	kinds := map[string]string{}
	for i := range nodeList {
		kinds[nodeList[i].Name] = nodeGPUKind(&nodeList[i])
	}
	s := &perfrun.GPUSharing{Pods: len(pods), Placed: map[string]map[string]int{}}
	for i := range pods {
		pod := &pods[i]
		asked, ok := pod.Labels[gpuKindLabel]
		if !ok {
			return nil, fmt.Errorf("pod %s/%s has no %s label", pod.Namespace, pod.Name, gpuKindLabel)
		}
		if pod.Spec.NodeName == "" {
			if s.Unbound == nil {
				s.Unbound = map[string]int{}
			}
			s.Unbound[asked]++
			continue
		}
		node, ok := kinds[pod.Spec.NodeName]
		if !ok {
			return nil, fmt.Errorf("pod %s/%s is bound to unknown node %s", pod.Namespace, pod.Name, pod.Spec.NodeName)
		}
		if s.Placed[asked] == nil {
			s.Placed[asked] = map[string]int{}
		}
		s.Placed[asked][node]++
		if asked == "cpu" && node != "cpu" {
			s.CPUPodsOnGPUNodes++
		}
	}
	return s, nil
}

// gpuSharingSummary is the line make perf prints per case.
func gpuSharingSummary(name string, s *perfrun.GPUSharing) string {
	var parts []string
	for _, asked := range gpuKinds {
		var on []string
		for _, node := range gpuKinds {
			if n := s.Placed[asked][node]; n > 0 {
				on = append(on, fmt.Sprintf("%d on %s nodes", n, node))
			}
		}
		if n := s.Unbound[asked]; n > 0 {
			on = append(on, fmt.Sprintf("%d UNBOUND", n))
		}
		if len(on) > 0 {
			parts = append(parts, asked+": "+strings.Join(on, ", "))
		}
	}
	unbound := 0
	for _, n := range s.Unbound {
		unbound += n
	}
	return fmt.Sprintf("%s %s: %d sessions, %d unbound after %s, %d without a GPU on GPU nodes; %s",
		gpuSharingTag, name, s.Pods, unbound, gpuSharingWait, s.CPUPodsOnGPUNodes, strings.Join(parts, "; "))
}

func TestCountGPUSharing(t *testing.T) {
	node := func(name string, res v1.ResourceName, n int64) v1.Node {
		nd := v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("64")}}}
		if res != "" {
			nd.Status.Allocatable[res] = *resource.NewQuantity(n, resource.DecimalSI)
		}
		return nd
	}
	pod := func(name, kind, nodeName string) v1.Pod {
		return v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: gpuSharingNamespace, Name: name, Labels: map[string]string{gpuKindLabel: kind}}, Spec: v1.PodSpec{NodeName: nodeName}}
	}
	nodes := []v1.Node{
		node("mig", "nvidia.com/mig-1g.10gb", 56),
		node("shared", "nvidia.com/gpu.shared", 32),
		node("whole", gpuResource, 8),
		// A node whose device plugin is down advertises 0: no kind of GPU node by allocatable.
		node("down", gpuResource, 0),
		node("cpu", "", 0),
	}
	got, err := countGPUSharing(nodes, []v1.Pod{
		pod("m1", "mig", "mig"), pod("m2", "mig", ""),
		pod("s1", "shared", "shared"),
		pod("w1", "whole", "whole"),
		pod("c1", "cpu", "cpu"), pod("c2", "cpu", "mig"), pod("c3", "cpu", "down"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &perfrun.GPUSharing{
		Pods: 7,
		Placed: map[string]map[string]int{
			"mig": {"mig": 1}, "shared": {"shared": 1}, "whole": {"whole": 1}, "cpu": {"cpu": 2, "mig": 1},
		},
		Unbound:           map[string]int{"mig": 1},
		CPUPodsOnGPUNodes: 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if line := gpuSharingSummary("case", got); !strings.Contains(line, "mig: 1 on mig nodes, 1 UNBOUND; shared: 1 on shared nodes; whole: 1 on whole nodes; cpu: 1 on mig nodes, 2 on cpu nodes") {
		t.Errorf("summary %q", line)
	}
}
