package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

// sandboxCommand runs `workbench-scheduler sandbox` with a private TMPDIR so that the test can
// check the sandbox leaves nothing behind.
func sandboxCommand(t *testing.T, args ...string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], append([]string{"sandbox"}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, tmp, &out
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("sandbox left %s behind in its TMPDIR", e.Name())
	}
}

func TestSandboxDemoPrintsReportAndCleansUp(t *testing.T) {
	cmd, tmp, out := sandboxCommand(t, "--scenario=demo")
	if err := cmd.Run(); err != nil {
		t.Fatalf("sandbox: %v\n%s", err, out)
	}
	report := out.String()
	for _, want := range []string{
		`Placement report: scenario "demo"`,
		"NODE GROUP", "gpu-a100", "cpu ",
		"0 undecided",
		"data-science/oversized-sam: 0/22 nodes are available: 12 Insufficient cpu", "pods without a GPU request are kept off GPU nodes",
		`ml-training/gpu-session-xia: 0/22 nodes are available: annotation workbench.dev/gpu-model="h200" names unknown GPU model "h200"`,
		"analytics/left-to-default-scheduler (schedulerName default-scheduler)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// The demo org: data-science fills its one-node pool, then its parent's; finance/analytics
	// fits its parent's pool; ml-training's H100 request falls through its A100 pool to the
	// unpooled H100s. Nobody lands in a pool it may not use.
	for _, row := range []string{
		`ai/data-science\s+([1-9]\d*)\s+([1-9]\d*)\s+0\s+0\s+0\n`,
		`ai/ml-training\s+6\s+0\s+0\s+1\s+0\n`,
		`finance/analytics\s+0\s+10\s+0\s+0\s+0\n`,
	} {
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("team report lacks a row matching %s:\n%s", row, report)
		}
	}
	assertEmptyDir(t, tmp)
}

func TestSandboxKeepServesUntilSIGTERM(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "sandbox.kubeconfig")
	cmd, tmp, out := sandboxCommand(t, "--scenario=none", "--keep", "--kubeconfig-out="+kubeconfig)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var client kubernetes.Interface
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		if _, err := os.Stat(kubeconfig); err != nil {
			return false, nil
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return false, err
		}
		client, err = kubernetes.NewForConfig(cfg)
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("kubeconfig never appeared: %v\n%s", err, out)
	}
	// The file appears only once the scheduler leads: its lease must already be held.
	lease, err := client.CoordinationV1().Leases("workbench-system").Get(context.Background(), "workbench-scheduler", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("kubeconfig written before the scheduler held its lease: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sandbox exited with %v after SIGTERM\n%s", err, out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("sandbox did not exit within a minute of SIGTERM\n%s", out)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig %s still exists after shutdown", kubeconfig)
	}
	assertEmptyDir(t, tmp)
}

func TestScenarioWithInvalidObjectAppliesNothing(t *testing.T) {
	scenario := `apiVersion: v1
kind: Namespace
metadata:
  name: scenario-must-not-exist
---
apiVersion: v1
kind: Pod
metadata:
  name: no-image
  namespace: scenario-must-not-exist
spec:
  containers:
  - name: main
`
	objs, err := sandbox.ParseScenario(strings.NewReader(scenario))
	if err != nil {
		t.Fatal(err)
	}
	err = sandbox.Apply(context.Background(), cp.Config, &sandbox.Scenario{Name: "bad", Objects: objs})
	if err == nil {
		t.Fatal("Apply succeeded, want an error for document 2")
	}
	for _, want := range []string{"document 2 (Pod scenario-must-not-exist/no-image)", "image", "nothing was applied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := cp.Client.CoreV1().Namespaces().Get(context.Background(), "scenario-must-not-exist", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace from document 1 exists (err=%v): a bad scenario must apply nothing", err)
	}
}
