package integration

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
)

// The scheduler runs from the exact file in the rendered ConfigMap, so this also proves that the
// shipped configuration works.
func TestShippedConfigBindsOptedInPodsOnly(t *testing.T) {
	config := renderedSchedulerConfig(t)
	if !bytes.Equal(config, manifests.SchedulerConfig) {
		t.Fatalf("the ConfigMap's config.yaml differs from the embedded manifests.SchedulerConfig the sandbox uses")
	}
	startScheduler(t, config)
	ns := testNamespace(t)
	createNodes(t, readyNode("it-basic-node", map[corev1.ResourceName]string{"cpu": "4", "memory": "8Gi", "pods": "110"}))

	// The default-scheduler pod goes first: had we queued it, we would have bound it first.
	other := createPod(t, st.MakePod().Namespace(ns).Name("for-default-scheduler").
		SchedulerName(corev1.DefaultSchedulerName).Container("registry.k8s.io/pause:3.10").Obj())
	createPod(t, st.MakePod().Namespace(ns).Name("for-workbench").
		SchedulerName(app.SchedulerName).Container("registry.k8s.io/pause:3.10").Obj())

	if node := waitForNode(t, ns, "for-workbench", 30*time.Second); node != "it-basic-node" {
		t.Fatalf("bound to %q, want it-basic-node", node)
	}
	// Give a stray decision time to land, then check nothing touched the other pod.
	time.Sleep(2 * time.Second)
	got, err := cp.Client.CoreV1().Pods(ns).Get(context.Background(), other.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "" || len(got.Status.Conditions) != 0 {
		t.Fatalf("pod for the default scheduler was touched: nodeName=%q conditions=%v", got.Spec.NodeName, got.Status.Conditions)
	}
}
