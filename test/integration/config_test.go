package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
)

// runBinary runs this test executable as the workbench-scheduler binary (see TestMain).
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exitErr):
		return string(out), exitErr.ExitCode()
	default:
		t.Fatalf("running the binary: %v", err)
		return "", -1
	}
}

const validHeader = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
`

func TestInvalidConfigFailsStartupNamingTheField(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string // must appear in the error and in the binary's output
	}{
		{
			name: "unknown plugin",
			config: validHeader + `profiles:
- schedulerName: workbench-scheduler
  plugins:
    filter:
      enabled:
      - name: NoSuchPlugin
`,
			want: "NoSuchPlugin",
		},
		{
			name: "bad plugin args",
			config: validHeader + `profiles:
- schedulerName: workbench-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: Bogus
`,
			want: "scoringStrategy.type",
		},
		{
			name:   "wrong apiVersion",
			config: strings.Replace(validHeader, "kubescheduler.config.k8s.io/v1", "kubescheduler.config.k8s.io/v9", 1),
			want:   "kubescheduler.config.k8s.io/v9",
		},
		{
			name:   "unknown field",
			config: validHeader + "percentageOfNodesToScroe: 50\n",
			want:   "percentageOfNodesToScroe",
		},
		{
			name:   "invalid YAML",
			config: validHeader + "profiles: [\n",
			want:   "yaml",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			// Point at the test apiserver so that only the config can be what fails.
			content := strings.Replace(tt.config, "kind: KubeSchedulerConfiguration\n",
				"kind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: "+kubeconfigPath+"\n", 1)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sched, err := app.StartInProcess(ctx, []string{"--config=" + path, "--secure-port=0"})
			if err == nil {
				sched.Stop()
				t.Fatalf("start-up succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}

			out, code := runBinary(t, "--config="+path, "--secure-port=0")
			if code == 0 {
				t.Fatalf("binary exited 0, want non-zero; output:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("binary output does not name %q:\n%s", tt.want, lastLines(out, 5))
			}
		})
	}
}

func TestBinaryBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{"missing config file", []string{"--config=/nonexistent/config.yaml"}, "/nonexistent/config.yaml"},
		{"sandbox unknown scenario file", []string{"sandbox", "--scenario=/nonexistent/scenario.yaml"}, "/nonexistent/scenario.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runBinary(t, tt.args...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; output:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, out)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n > 3 {
				t.Errorf("want a short message, got %d lines:\n%s", n+1, out)
			}
		})
	}
}

func TestVersionNamesProjectAndCommit(t *testing.T) {
	out, code := runBinary(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "workbench-scheduler ") || !strings.Contains(out, "commit ") {
		t.Fatalf("--version: exit %d, output %q", code, out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
