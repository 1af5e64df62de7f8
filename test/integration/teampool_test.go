package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
)

func poolTestNode(name, pool string) *corev1.Node {
	n := readyNode(name, map[corev1.ResourceName]string{"cpu": "4", "memory": "16Gi", "pods": "110"})
	n.Labels["it-pool"] = pool
	return n
}

func teamPoolSpec(owner, pool string, lendable bool) workbenchv1alpha1.ResourcePoolSpec {
	return workbenchv1alpha1.ResourcePoolSpec{Owner: owner, Lendable: lendable,
		NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"it-pool": pool}}}
}

func cpuPod(ns, name, cpu string, labels map[string]string) *corev1.Pod {
	p := workbenchPod(ns, name, "", nil)
	p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	p.Labels = labels
	return p
}

// waitForPool polls a pool until check passes on it, returning the last one seen.
func waitForPool(t *testing.T, name string, timeout time.Duration, check func(*workbenchv1alpha1.ResourcePool) string) {
	t.Helper()
	client := workbenchClient(t)
	var problem string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := client.WorkbenchV1alpha1().ResourcePools().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		problem = check(p)
		return problem == "", nil
	})
	if err != nil {
		t.Fatalf("pool %s: %s (%v)", name, problem, err)
	}
}

// The shipped config's TeamPool against a real apiserver: the own pool first, then the parent
// team's, shared pools for team-less pods, a closed pool refused with its owner named, a bad
// team label refused with an event, status written by the leader, overlaps reported.
func TestTeamPoolWithShippedConfig(t *testing.T) {
	client := workbenchClient(t)
	createPool(t, client, "it-recsys", teamPoolSpec("ai/applied-ml/recsys", "recsys", false))
	createPool(t, client, "it-applied", teamPoolSpec("ai/applied-ml", "applied", false))
	createPool(t, client, "it-shared", teamPoolSpec("", "shared", false))
	createPool(t, client, "it-finance", teamPoolSpec("finance", "finance", false))
	createNodes(t,
		poolTestNode("it-tp-recsys-1", "recsys"), poolTestNode("it-tp-applied-1", "applied"),
		poolTestNode("it-tp-shared-1", "shared"), poolTestNode("it-tp-finance-1", "finance"))
	startScheduler(t, nil)

	teamNS := testNamespace(t)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"ai.applied-ml.recsys"}}}`, teampool.TeamLabel)
	if _, err := cp.Client.CoreV1().Namespaces().Patch(context.Background(), teamNS, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	plainNS := testNamespace(t)

	// One at a time, so that the second sees the first's CPU taken.
	createPod(t, cpuPod(teamNS, "own-first", "3", nil))
	if got := waitForNode(t, teamNS, "own-first", 30*time.Second); got != "it-tp-recsys-1" {
		t.Errorf("own-first bound to %s, want its team's pool it-tp-recsys-1", got)
	}
	createPod(t, cpuPod(teamNS, "own-spills", "3", nil))
	if got := waitForNode(t, teamNS, "own-spills", 30*time.Second); got != "it-tp-applied-1" {
		t.Errorf("own-spills bound to %s, want the parent team's pool it-tp-applied-1", got)
	}
	createPod(t, cpuPod(plainNS, "teamless", "1", nil))
	if got := waitForNode(t, plainNS, "teamless", 30*time.Second); got != "it-tp-shared-1" {
		t.Errorf("teamless bound to %s, want the shared pool", got)
	}
	// The pod's own label overrides its namespace's.
	createPod(t, cpuPod(teamNS, "finance-label", "1", map[string]string{teampool.TeamLabel: "finance"}))
	if got := waitForNode(t, teamNS, "finance-label", 30*time.Second); got != "it-tp-finance-1" {
		t.Errorf("finance-label bound to %s, want the finance pool", got)
	}

	// vision owns only a GPU node: its CPU pod passes the room check there, GPUAffinity refuses
	// every node of the tier, and PostFilter sends the next attempt to the shared pool.
	gpuNode := gpuTestNode("it-tp-vision-gpu-1", "NVIDIA-A100-SXM4-80GB", 8)
	gpuNode.Labels["it-pool"] = "vision-gpu"
	createNodes(t, gpuNode)
	createPool(t, client, "it-vision-gpu", teamPoolSpec("vision", "vision-gpu", false))
	createPod(t, cpuPod(plainNS, "vision-cpu", "1", map[string]string{teampool.TeamLabel: "vision"}))
	if got := waitForNode(t, plainNS, "vision-cpu", 30*time.Second); got != "it-tp-shared-1" {
		t.Errorf("vision-cpu bound to %s, want the shared pool after its own GPU-only pool refused it", got)
	}

	closed := cpuPod(teamNS, "wants-finance", "1", nil)
	closed.Spec.NodeSelector = map[string]string{"it-pool": "finance"}
	createPod(t, closed)
	if msg := waitUnschedulable(t, teamNS, "wants-finance"); !strings.Contains(msg, "node is in pool it-finance of team finance, which does not lend it to team ai/applied-ml/recsys") {
		t.Errorf("wants-finance: %q, want the closed pool and its owner named", msg)
	}

	createPod(t, cpuPod(plainNS, "bad-team", "1", map[string]string{teampool.TeamLabel: "Data_Science"}))
	wantMsg := `pod label workbench.dev/team="Data_Science" is not a team path`
	if msg := waitUnschedulable(t, plainNS, "bad-team"); !strings.Contains(msg, wantMsg) {
		t.Errorf("bad-team: %q, want %q", msg, wantMsg)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(plainNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "bad-team" && e.Reason == teampool.EventReasonInvalidTeam && strings.Contains(e.Note, wantMsg) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no %s event for bad-team: %v", teampool.EventReasonInvalidTeam, err)
	}

	// The leader writes status within its 10 s interval.
	waitForPool(t, "it-recsys", 30*time.Second, func(p *workbenchv1alpha1.ResourcePool) string {
		s := p.Status
		if s.Nodes != 1 || s.Allocated.CPU.Cmp(resource.MustParse("3")) != 0 || s.Free.CPU.Cmp(resource.MustParse("1")) != 0 ||
			!meta.IsStatusConditionTrue(s.Conditions, workbenchv1alpha1.ConditionReady) {
			return fmt.Sprintf("status %+v, want 1 node, 3 CPUs allocated, 1 free, Ready", s)
		}
		return ""
	})

	// A more specific pool takes the shared node; both report the overlap.
	overlap := teamPoolSpec("ai/applied-ml/recsys", "shared", false)
	overlap.NodeSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpExists}}
	createPool(t, client, "it-overlap", overlap)
	for _, name := range []string{"it-overlap", "it-shared"} {
		wantNodes := map[string]int32{"it-overlap": 1, "it-shared": 0}[name]
		waitForPool(t, name, 30*time.Second, func(p *workbenchv1alpha1.ResourcePool) string {
			if p.Status.Nodes != wantNodes || !meta.IsStatusConditionTrue(p.Status.Conditions, workbenchv1alpha1.ConditionOverlapping) {
				return fmt.Sprintf("status %+v, want %d nodes and Overlapping", p.Status, wantNodes)
			}
			return ""
		})
	}

	wantAtLeastOne := []string{
		`workbench_teampool_placements_total{tier="own"}`,
		`workbench_teampool_placements_total{tier="ancestor"}`,
		`workbench_teampool_placements_total{tier="shared"}`,
		`workbench_teampool_filter_rejections_total{reason="invalid_team"}`,
		`workbench_teampool_filter_rejections_total{reason="not_lendable"}`,
	}
	wantExactly := map[string]float64{
		`workbench_resourcepool_capacity{pool="it-recsys",resource="cpu"}`:  4,
		`workbench_resourcepool_allocated{pool="it-recsys",resource="cpu"}`: 3,
		// own-spills runs in the parent's pool, finance-label in finance's.
		`workbench_team_pods_outside_own_pools{team="ai/applied-ml/recsys"}`: 1,
	}
	waitForMetrics(t, wantAtLeastOne, wantExactly)
}
