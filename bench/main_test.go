package bench

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"k8s.io/klog/v2"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
)

// runBench gates the benchmarks that start a control plane, so `go test ./...` stays fast.
var runBench = flag.Bool("workbench.bench", false, "run the control-plane benchmarks (make bench-gpu)")

// resultsDir is where writeResult puts its JSON: by default an untracked directory, so that a
// run never rewrites the published raw files (make bench-publish copies them there).
var resultsDir = flag.String("workbench.out", filepath.Join("results", "local"), "directory for the benchmarks' JSON results")

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

// writeResult stores one benchmark's figures as JSON under -workbench.out, with the commit and
// machine they were measured on; without a commit it refuses, as make perf's run records do.
func writeResult(t testing.TB, name string, figures any) {
	t.Helper()
	prov, err := perfrun.Current()
	if err != nil {
		t.Fatalf("recording %s: %v", name, err)
	}
	out := map[string]any{"benchmark": name, "provenance": prov, "machine": machine(prov), "figures": figures}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(*resultsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(*resultsDir, name+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// machine is the block earlier results carry, kept so that old and new files read alike.
func machine(prov perfrun.Provenance) map[string]any {
	return map[string]any{"cores": prov.Cores, "cpu": prov.CPU, "go": prov.GoVersion, "goarch": runtime.GOARCH}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
