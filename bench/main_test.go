package bench

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
)

// runBench gates the benchmarks that start a control plane, so `go test ./...` stays fast.
var runBench = flag.Bool("workbench.bench", false, "run the control-plane benchmarks (make bench-gpu)")

var (
	cpOnce sync.Once
	cp     *controlplane.ControlPlane
	cpErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	_ = fs.Set("log_file", os.DevNull)
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	os.Exit(code)
}

// controlPlane starts the shared control plane on first use.
func controlPlane(t testing.TB) *controlplane.ControlPlane {
	t.Helper()
	if !*runBench {
		t.Skip("control-plane benchmark: run with -workbench.bench (make bench-gpu)")
	}
	cpOnce.Do(func() { cp, cpErr = controlplane.Start(context.Background()) })
	if cpErr != nil {
		t.Fatal(cpErr)
	}
	return cp
}

// writeResult stores one benchmark's figures as JSON under bench/results/, with the machine.
func writeResult(t testing.TB, name string, figures any) {
	t.Helper()
	out := map[string]any{"benchmark": name, "machine": machine(), "figures": figures}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("results", name+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

func machine() map[string]any {
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return map[string]any{"cores": runtime.NumCPU(), "cpu": model, "go": runtime.Version(), "goarch": runtime.GOARCH}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
