package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"sigs.k8s.io/yaml"

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

// shippedBinary is what the binary needs to run as the Deployment runs it: the scheduler config
// from the rendered ConfigMap, and the shipped ServiceAccount's token for the client connection
// and for delegated authentication alike.
type shippedBinary struct {
	token      string
	kubeconfig string
	config     string // the rendered config, its clientConnection pointing at kubeconfig
}

// setUpShippedBinary applies the rendered manifests (namespace, ServiceAccount, RBAC), mints a
// token for the ServiceAccount and writes the files the binary runs from.
func setUpShippedBinary(t *testing.T) shippedBinary {
	t.Helper()
	apply(t, renderManifests(t))
	expiry := int64(3600)
	tr, err := cp.Client.CoreV1().ServiceAccounts(shippedNamespace).CreateToken(context.Background(), shippedServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("minting a token for %s/%s: %v", shippedNamespace, shippedServiceAccount, err)
	}
	dir := t.TempDir()
	b := shippedBinary{token: tr.Status.Token, kubeconfig: filepath.Join(dir, "serviceaccount.kubeconfig"), config: filepath.Join(dir, "config.yaml")}
	data, err := cp.KubeconfigForToken(b.token)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(renderedSchedulerConfig(t), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"].(map[string]any)["kubeconfig"] = b.kubeconfig
	if data, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// binaryProcess is the binary running as a subprocess of the test.
type binaryProcess struct {
	cmd  *exec.Cmd
	port int // the secure port: /metrics, /readyz
	out  *syncBuffer
	done chan struct{} // closed once the process has exited and err is set
	err  error         // what Wait returned
}

// start runs the binary until the test ends, then stops it (SIGTERM, SIGKILL after 20 s).
func (b shippedBinary) start(t *testing.T) *binaryProcess {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "--config="+b.config, fmt.Sprintf("--secure-port=%d", port), "--bind-address=127.0.0.1",
		"--authentication-kubeconfig="+b.kubeconfig, "--authorization-kubeconfig="+b.kubeconfig, "-v=2")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p := &binaryProcess{cmd: cmd, port: port, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of the binary on port %d (last lines):\n%s", p.port, lastLines(p.out.String(), 60))
		}
	})
	return p
}

// stop sends SIGTERM and waits for the process to exit, killing it after 20 s.
func (p *binaryProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.exited(20 * time.Second) {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process exits within timeout.
func (p *binaryProcess) exited(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// get fetches path from the secure port, with token as the bearer token unless it is empty.
func (p *binaryProcess) get(path, token string) (int, string) {
	// The secure port serves a self-signed certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", p.port, path), nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// deleteShippedLeaseAtCleanup deletes the shipped Lease when the test ends, so that the next
// scheduler in this package takes it at once: a binary stopped with SIGTERM releases it, but
// one killed, or an in-process scheduler, may leave it held until it expires. Register it
// before starting binaries: cleanups run last-in first-out, so it runs after they stopped.
func deleteShippedLeaseAtCleanup(t *testing.T) {
	t.Cleanup(func() {
		err := cp.Client.CoordinationV1().Leases(shippedNamespace).Delete(context.Background(), shippedLease, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the lease %s/%s: %v", shippedNamespace, shippedLease, err)
		}
	})
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
