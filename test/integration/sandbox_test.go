package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

// sandboxCommand runs `workbench-scheduler sandbox` with a private TMPDIR so that the test can
// check the sandbox leaves nothing behind. The output may be read while it runs.
func sandboxCommand(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], append([]string{"sandbox"}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "TMPDIR="+tmp)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, tmp, out
}

// waitExit waits up to limit for a started command and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration, out fmt.Stringer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		t.Fatalf("sandbox did not exit within %v\n%s", limit, out)
		return -1
	}
}

// waitForOutput waits until the output contains want, and reports whether it did.
func waitForOutput(out fmt.Stringer, want string, limit time.Duration) bool {
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, limit, true, func(context.Context) (bool, error) {
		return strings.Contains(out.String(), want), nil
	})
	return err == nil
}

// waitForKubeconfig waits until path holds a kubeconfig other than previous and returns a client
// built from it.
func waitForKubeconfig(t *testing.T, path string, previous []byte, out fmt.Stringer) kubernetes.Interface {
	t.Helper()
	var client kubernetes.Interface
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, previous) {
			return false, nil
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
		if err != nil {
			// The file is written atomically: what is there is whole.
			return false, fmt.Errorf("%s is not a kubeconfig: %w", path, err)
		}
		client, err = kubernetes.NewForConfig(cfg)
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("kubeconfig never appeared: %v\n%s", err, out)
	}
	return client
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
	// The demo org: data-science fills its one-node pool, then its parent's, and its gang's GPU
	// worker goes to an unpooled T4; finance/analytics fits its parent's pool; ml-training's
	// H100 request falls through its A100 pool to the unpooled H100s, and its two-worker gang
	// lands in its A100 pool. Nobody lands in a pool it may not use.
	for _, row := range []string{
		`ai/data-science\s+([1-9]\d*)\s+([1-9]\d*)\s+0\s+1\s+0\n`,
		`ai/ml-training\s+8\s+0\s+0\s+1\s+0\n`,
		`finance/analytics\s+0\s+10\s+0\s+0\s+0\n`,
	} {
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("team report lacks a row matching %s:\n%s", row, report)
		}
	}
	// Gangs: the notebook with its workers and the A100 training session are placed whole;
	// the pretraining session needs three 8-GPU H100 workers where the cluster has two H100
	// nodes (one of them taken by llm-train-uma if it was placed first), so none of its pods is
	// placed and its PodGroup, still Pending, names the bottleneck.
	for _, row := range []string{
		`data-science/dask-ana\s+session\s+3\s+3\s+3\s+placed\s+(cpu-zone-[a-c]-\d, )+gpu-t4-zone-[ab]-\d\n`,
		`ml-training/ddp-pia\s+session\s+2\s+2\s+2\s+placed\s+gpu-a100-zone-[ab]-\d(, gpu-a100-zone-[ab]-\d)?\n`,
		`data-science/pretrain-ivo\s+session\s+4\s+4\s+0\s+not placed\s+-\n`,
		`\n  data-science/pretrain-ivo \(Pending\): gang data-science/pretrain-ivo needs 3 pods x 8 nvidia.com/gpu, [^;]* on nodes matching gpu-model h100; (1 node|2 nodes) can host one, and only [12] fit together; other nodes: [^\n]*Tesla-T4`,
	} {
		if !regexp.MustCompile(row).MatchString(report) {
			t.Errorf("gang report lacks a row matching %s:\n%s", row, report)
		}
	}
	assertEmptyDir(t, tmp)
}

func TestSandboxKeepServesUntilSIGTERM(t *testing.T) {
	tests := []struct {
		name string
		// existing is what --kubeconfig-out holds before the sandbox starts; nil: nothing.
		existing []byte
		args     []string
	}{
		{name: "new file"},
		{name: "--force over an existing file", existing: []byte("the user's file\n"), args: []string{"--force"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kubeconfig := filepath.Join(t.TempDir(), "sandbox.kubeconfig")
			if tt.existing != nil {
				if err := os.WriteFile(kubeconfig, tt.existing, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd, tmp, out := sandboxCommand(t, append([]string{"--scenario=none", "--keep", "--kubeconfig-out=" + kubeconfig}, tt.args...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()

			client := waitForKubeconfig(t, kubeconfig, tt.existing, out)
			// The file appears only once the scheduler leads: its lease must already be held.
			lease, err := client.CoordinationV1().Leases("workbench-system").Get(context.Background(), "workbench-scheduler", metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
				t.Fatalf("kubeconfig written before the scheduler held its lease: %v", err)
			}

			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, cmd, time.Minute, out); code != 0 {
				t.Fatalf("sandbox exited with status %d after SIGTERM\n%s", code, out)
			}
			// With --force the user's file was overwritten by consent; what is removed is the
			// sandbox's own.
			if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
				t.Errorf("kubeconfig %s still exists after shutdown", kubeconfig)
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// Input the sandbox must refuse is refused before a control plane starts, and the user's files
// are left as they were.
func TestSandboxRefusesBadInputBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.kubeconfig")
	const userKubeconfig = "apiVersion: v1\nkind: Config\n# the user's own\n"
	if err := os.WriteFile(existing, []byte(userKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	duplicates := filepath.Join(dir, "duplicates.yaml")
	if err := os.WriteFile(duplicates, []byte(`apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: i}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "duplicate documents are named both",
			args: []string{"--scenario=" + duplicates},
			want: []string{"documents 1 (Pod default/p) and 3 (Pod p) name the same object"},
		},
		{
			name: "--kubeconfig-out names an existing file",
			args: []string{"--scenario=none", "--kubeconfig-out=" + existing},
			want: []string{existing + " already exists", "--force"},
		},
		{
			name: "--kubeconfig-out names a directory, even with --force",
			args: []string{"--scenario=none", "--kubeconfig-out=" + dir, "--force"},
			want: []string{dir + " is not a regular file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, tmp, out := sandboxCommand(t, tt.args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, cmd, 2*time.Minute, out); code == 0 {
				t.Fatalf("sandbox succeeded, want it to refuse\n%s", out)
			}
			for _, want := range tt.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out.String(), "Control plane up") {
				t.Errorf("a control plane started before the input was refused:\n%s", out)
			}
			if data, err := os.ReadFile(existing); err != nil || string(data) != userKubeconfig {
				t.Errorf("the user's kubeconfig changed: %q, %v", data, err)
			}
			assertEmptyDir(t, tmp)
		})
	}
}

// A signal before the scheduler leads ends the start as cancelled, with an orderly teardown.
func TestSandboxSignalDuringStartIsReportedAsCancelled(t *testing.T) {
	// A lease name the apiserver rejects: the scheduler retries for ever and never leads.
	config := strings.Replace(string(manifests.SchedulerConfig), "resourceName: workbench-scheduler", "resourceName: Not_A_Lease_Name", 1)
	if config == string(manifests.SchedulerConfig) {
		t.Fatal("the shipped configuration no longer names its lease workbench-scheduler")
	}
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, tmp, out := sandboxCommand(t, "--scenario=none", "--config="+configPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if !waitForOutput(out, "Control plane up", 2*time.Minute) {
		t.Fatalf("the control plane did not start:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, time.Minute, out); code == 0 {
		t.Fatalf("sandbox succeeded, want a cancelled start\n%s", out)
	}
	if !strings.Contains(out.String(), "cancelled") || strings.Contains(out.String(), "in time") {
		t.Errorf("want the start reported as cancelled, not as a late lease:\n%s", out)
	}
	assertEmptyDir(t, tmp)
}

// The first SIGTERM starts an orderly teardown; a second ends the process at once, still
// removing the kubeconfig it wrote.
func TestSandboxSecondSignalAbortsTeardown(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "sandbox.kubeconfig")
	cmd, _, out := sandboxCommand(t, "--scenario=none", "--keep", "--kubeconfig-out="+kubeconfig)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForKubeconfig(t, kubeconfig, nil, out)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Two signals sent back to back may be delivered as one: wait until the first is taken.
	if !waitForOutput(out, "shutting down", 30*time.Second) {
		t.Errorf("no word of the first SIGTERM:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous: "at once" here means without waiting for the apiserver and etcd to stop.
	code := waitExit(t, cmd, 30*time.Second, out)
	if want := 128 + int(syscall.SIGTERM); code != want {
		t.Errorf("exit status %d after a second SIGTERM, want %d\n%s", code, want, out)
	}
	if !strings.Contains(out.String(), "teardown aborted") {
		t.Errorf("output does not say the teardown was aborted:\n%s", out)
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		t.Errorf("kubeconfig %s still exists after the abort", kubeconfig)
	}
}

// widgetCRD is a CustomResourceDefinition of a namespaced kind whose spec.size is an integer.
func widgetCRD(group string) string {
	return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.` + group + `
spec:
  group: ` + group + `
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`
}

// objectRef names an object for a dynamic client.
type objectRef struct {
	resource        schema.GroupVersionResource
	namespace, name string
}

func (r objectRef) get(t *testing.T) error {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dyn.Resource(r.resource).Namespace(r.namespace).Get(context.Background(), r.name, metav1.GetOptions{})
	return err
}

var (
	namespaces      = corev1.SchemeGroupVersion.WithResource("namespaces")
	pods            = corev1.SchemeGroupVersion.WithResource("pods")
	nodes           = corev1.SchemeGroupVersion.WithResource("nodes")
	priorityClasses = schedulingv1.SchemeGroupVersion.WithResource("priorityclasses")
	crds            = apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
)

// A scenario with an invalid document leaves nothing behind, even though the documents others
// depend on (namespaces, priority classes, CRDs) had to be created to validate the rest.
func TestScenarioWithInvalidObjectAppliesNothing(t *testing.T) {
	tests := []struct {
		name     string
		scenario string
		wantErr  []string
		// mustNotExist are the scenario's valid objects.
		mustNotExist []objectRef
	}{
		{
			name: "pod without an image in a new namespace",
			scenario: `apiVersion: v1
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
`,
			wantErr:      []string{"document 2 (Pod scenario-must-not-exist/no-image)", "image", "nothing was applied"},
			mustNotExist: []objectRef{{resource: namespaces, name: "scenario-must-not-exist"}},
		},
		{
			name: "custom resource failing its CRD's schema, after a namespace, a priority class and the CRD",
			scenario: widgetCRD("invalid.example.test") + `---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: scenario-must-not-exist}
value: 1000
---
apiVersion: v1
kind: Namespace
metadata: {name: scenario-must-not-exist-2}
---
apiVersion: invalid.example.test/v1
kind: Widget
metadata: {name: w, namespace: scenario-must-not-exist-2}
spec: {size: big}
`,
			wantErr: []string{"document 4 (Widget scenario-must-not-exist-2/w) is invalid", "spec.size", "nothing was applied"},
			mustNotExist: []objectRef{
				{resource: crds, name: "widgets.invalid.example.test"},
				{resource: priorityClasses, name: "scenario-must-not-exist"},
				{resource: namespaces, name: "scenario-must-not-exist-2"},
			},
		},
		{
			name: "cluster-scoped duplicates differing only in a namespace they cannot have",
			scenario: `apiVersion: v1
kind: Namespace
metadata: {name: scenario-must-not-exist-3}
---
apiVersion: v1
kind: Node
metadata: {name: scenario-node, namespace: scenario-must-not-exist-3}
---
apiVersion: v1
kind: Node
metadata: {name: scenario-node}
`,
			wantErr: []string{"documents 2 (Node scenario-must-not-exist-3/scenario-node) and 3 (Node scenario-node) name the same object", "nothing was applied"},
			mustNotExist: []objectRef{
				{resource: namespaces, name: "scenario-must-not-exist-3"},
				{resource: nodes, name: "scenario-node"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := sandbox.ParseScenario(strings.NewReader(tt.scenario))
			if err != nil {
				t.Fatal(err)
			}
			err = sandbox.Apply(context.Background(), cp.Config, &sandbox.Scenario{Name: "bad", Objects: objs})
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			for _, ref := range tt.mustNotExist {
				if err := ref.get(t); !apierrors.IsNotFound(err) {
					t.Errorf("%s %s exists (err=%v): a bad scenario must leave nothing behind", ref.resource.Resource, ref.name, err)
				}
			}
		})
	}
}

// Documents that depend on others in the same scenario apply: the foundations are created
// before the rest is validated.
func TestScenarioFoundationsApplyBeforeDependents(t *testing.T) {
	tests := []struct {
		name     string
		scenario string
		// check runs once the scenario is applied.
		check func(t *testing.T)
		// created are removed after the test.
		created []objectRef
	}{
		{
			name: "pod using a priority class of the scenario",
			scenario: `apiVersion: v1
kind: Pod
metadata: {name: urgent, namespace: scenario-priority}
spec:
  priorityClassName: scenario-urgent
  containers: [{name: main, image: busybox}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: scenario-urgent}
value: 100000
---
apiVersion: v1
kind: Namespace
metadata: {name: scenario-priority}
`,
			check: func(t *testing.T) {
				pod, err := cp.Client.CoreV1().Pods("scenario-priority").Get(context.Background(), "urgent", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if pod.Spec.Priority == nil || *pod.Spec.Priority != 100000 {
					t.Errorf("pod priority = %v, want 100000 from PriorityClass scenario-urgent", pod.Spec.Priority)
				}
			},
			created: []objectRef{
				{resource: pods, namespace: "scenario-priority", name: "urgent"},
				{resource: namespaces, name: "scenario-priority"},
				{resource: priorityClasses, name: "scenario-urgent"},
			},
		},
		{
			name: "custom resource of a CRD of the scenario",
			scenario: `apiVersion: valid.example.test/v1
kind: Widget
metadata: {name: w, namespace: scenario-widgets}
spec: {size: 3}
---
` + widgetCRD("valid.example.test") + `---
apiVersion: v1
kind: Namespace
metadata: {name: scenario-widgets}
`,
			check: func(t *testing.T) {
				ref := objectRef{resource: schema.GroupVersionResource{Group: "valid.example.test", Version: "v1", Resource: "widgets"}, namespace: "scenario-widgets", name: "w"}
				if err := ref.get(t); err != nil {
					t.Errorf("widget: %v", err)
				}
			},
			created: []objectRef{
				{resource: crds, name: "widgets.valid.example.test"},
				{resource: namespaces, name: "scenario-widgets"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := sandbox.ParseScenario(strings.NewReader(tt.scenario))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				dyn, err := dynamic.NewForConfig(cp.Config)
				if err != nil {
					t.Fatal(err)
				}
				zero := int64(0)
				for _, ref := range tt.created {
					_ = dyn.Resource(ref.resource).Namespace(ref.namespace).Delete(context.Background(), ref.name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			})
			if err := sandbox.Apply(context.Background(), cp.Config, &sandbox.Scenario{Name: "foundations", Objects: objs}); err != nil {
				t.Fatal(err)
			}
			tt.check(t)
		})
	}
}

// `make test` works where there is no C compiler, without the race detector and saying so;
// RACE=1, which CI sets, makes that an error instead.
func TestMakeTestUnitWithoutACompiler(t *testing.T) {
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	goPath, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	// A PATH with go and a shell but no C compiler.
	bin := t.TempDir()
	for name, target := range map[string]string{"go": goPath, "sh": "/bin/sh", "bash": "/bin/bash"} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		env      []string
		wantOK   bool
		want     []string
		dontWant string
	}{
		{
			name:     "without the race detector",
			wantOK:   true,
			want:     []string{"WITHOUT the race detector", "go test -count=1 ./pkg/version"},
			dontWant: "-race",
		},
		{
			name: "RACE=1 fails",
			env:  []string{"RACE=1"},
			want: []string{"RACE=1 but the race detector cannot run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One small package: what is tested here is the Makefile, not the packages.
			cmd := exec.Command(makePath, "-C", repoPath(), "test-unit", "RACE_PKGS=./pkg/version")
			// Nothing of an outer make (CI runs this under RACE=1 make test) or of a chosen compiler.
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
				name, _, _ := strings.Cut(kv, "=")
				return slices.Contains([]string{"PATH", "CC", "CGO_ENABLED", "RACE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}, name)
			})
			cmd.Env = append(append(env, "PATH="+bin), tt.env...)
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("make test-unit: err = %v, want success %v\n%s", err, tt.wantOK, out)
			}
			for _, want := range tt.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if tt.dontWant != "" && strings.Contains(string(out), tt.dontWant) {
				t.Errorf("output contains %q:\n%s", tt.dontWant, out)
			}
		})
	}
}
