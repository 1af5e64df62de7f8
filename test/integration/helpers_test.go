package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
)

// startScheduler runs the scheduler from config (the shipped one when nil) until the test ends.
func startScheduler(t *testing.T, config []byte) {
	t.Helper()
	if config == nil {
		config = manifests.SchedulerConfig
	}
	sched, err := app.StartFromConfig(context.Background(), cp.Client, config, kubeconfigPath, t.TempDir(), "--secure-port=0")
	if err != nil {
		t.Fatalf("starting the scheduler: %v", err)
	}
	t.Cleanup(sched.Stop)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// testNamespace creates a namespace for one test and deletes it with the test's pods after.
func testNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("it-%d", time.Now().UnixNano()%1_000_000_000)
	ensureNamespace(t, name)
	t.Cleanup(func() {
		ctx := context.Background()
		zero := int64(0)
		_ = cp.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = cp.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// createNodes creates ready nodes and removes them when the test ends.
func createNodes(t *testing.T, nodes ...*corev1.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := cp.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating node %s: %v", n.Name, err)
		}
		name := n.Name
		t.Cleanup(func() { _ = cp.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
}

func readyNode(name string, capacity map[corev1.ResourceName]string) *corev1.Node {
	n := st.MakeNode().Name(name).Label(corev1.LabelHostname, name).Capacity(capacity).Obj()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	return n
}

func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := cp.Client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return created
}

// waitForNode returns the node the pod is bound to, failing the test after timeout.
func waitForNode(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = pod.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s was not bound within %v: %v", ns, name, timeout, err)
	}
	return node
}

// apiextensionsClient reaches the CustomResourceDefinitions of cp.
func apiextensionsClient(t *testing.T) apiextensionsclient.Interface {
	t.Helper()
	c, err := apiextensionsclient.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// workbenchClient reaches workbench-scheduler's own resources (ResourcePools) on cp.
func workbenchClient(t *testing.T) versioned.Interface {
	t.Helper()
	// cp.Config speaks protobuf, which custom resources do not.
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	c, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
