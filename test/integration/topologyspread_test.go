package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	"k8s.io/utils/ptr"
)

// A key of our own, so nodes other tests leave behind never count as domains.
const itZoneKey = "workbench.dev/it-zone"

func spreadPod(ns, name string) *corev1.Pod {
	p := workbenchPod(ns, name, "", nil)
	p.Labels = map[string]string{"app": "spread-it"}
	p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: itZoneKey, WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread-it"}},
		// Count every zone even for a pod pinned to one, so that zone can be over its skew.
		NodeAffinityPolicy: ptr.To(corev1.NodeInclusionPolicyIgnore),
	}}
	return p
}

// The shipped profile runs IndexedPodTopologySpread in place of upstream's: pods spread evenly
// over zones, a pod pinned to a full zone is unschedulable with upstream's reason, and deleting
// a pod there (an event upstream's hints react to) lets it bind, which needs the index to see
// the deletion.
func TestIndexedTopologySpreadWithShippedConfig(t *testing.T) {
	startScheduler(t, nil)
	ns := testNamespace(t)
	zones := map[string]string{"it-ts-a": "a", "it-ts-b": "b", "it-ts-c": "c"}
	for name, zone := range zones {
		n := gpuTestNode(name, "", 0)
		n.Labels[itZoneKey] = zone
		createNodes(t, n)
	}

	perZone := map[string]int{}
	var lastPod, lastZone string
	for _, name := range []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"} {
		createPod(t, spreadPod(ns, name))
		zone := zones[waitForNode(t, ns, name, 30*time.Second)]
		perZone[zone]++
		lastPod, lastZone = name, zone
	}
	for zone, n := range perZone {
		if want := 2; zone != lastZone && n != want || zone == lastZone && n != want+1 {
			t.Errorf("zone %s holds %d pods, want 2 (3 in the zone of the 7th pod): %v", zone, n, perZone)
		}
	}

	pinned := spreadPod(ns, "pinned")
	pinned.Spec.NodeSelector = map[string]string{itZoneKey: lastZone}
	createPod(t, pinned)
	msg := waitUnschedulable(t, ns, "pinned")
	if !strings.Contains(msg, podtopologyspread.ErrReasonConstraintsNotMatch) {
		t.Errorf("pinned pod's condition says %q, want upstream's reason %q", msg, podtopologyspread.ErrReasonConstraintsNotMatch)
	}

	zero := int64(0)
	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), lastPod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if got := zones[waitForNode(t, ns, "pinned", 30*time.Second)]; got != lastZone {
		t.Errorf("pinned pod bound in zone %s, want %s", got, lastZone)
	}

	text := scrape(t)
	if v, ok := metricValue(text, "workbench_topologyspread_index_selectors"); !ok || v < 1 {
		t.Errorf("workbench_topologyspread_index_selectors = %v (found %v), want >= 1", v, ok)
	}
	if v, ok := metricValue(text, "workbench_topologyspread_index_nodes_recounted_total"); !ok || v < 1 {
		t.Errorf("workbench_topologyspread_index_nodes_recounted_total = %v (found %v), want >= 1", v, ok)
	}
}

// waitUnschedulable returns the message of the pod's PodScheduled=False condition.
func waitUnschedulable(t *testing.T, ns, name string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				msg = c.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s never reported PodScheduled=False: %v", ns, name, err)
	}
	return msg
}
