// Package perf runs upstream's scheduler_perf workloads twice in one invocation: with upstream's
// default profile and with the workbench profile we ship. The TeamPool workload compares the
// shipped profile with itself minus TeamPool instead; GPUFragmentation adds a third profile,
// upstream's with GPU bin-packing (NodeResourcesFit MostAllocated). Run it with make bench,
// make bench-teampool, make bench-sessions or make bench-gpu-perf.
package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"
	"sigs.k8s.io/yaml"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
)

func TestMain(m *testing.M) {
	if err := perf.InitTests(); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	start := time.Now()
	run := os.Getenv("PERF_RUN")
	// A run that could not be recorded is refused before it starts, not after an hour.
	var prov perfrun.Provenance
	if run != "" {
		var err error
		if prov, err = perfrun.Current(); err != nil {
			fmt.Fprintf(os.Stderr, "not running %s: %v\n", os.Getenv("PERF_CASE"), err)
			os.Exit(1)
		}
	}
	if c := os.Getenv("PERF_CASE"); c != "" {
		go reportProgress(c, os.Getenv("ARTIFACTS"), 30*time.Second)
	}
	var heap *heapSampler
	if run != "" {
		heap = sampleHeap(heapSamplingInterval)
	}
	code := m.Run()
	if run != "" && code == 0 {
		if err := writeRunRecord(run, os.Getenv("PERF_CASE"), prov, start, heap); err != nil {
			fmt.Fprintf(os.Stderr, "recording the run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// progressClient is the running workload's apiserver client, for reportProgress; nil outside a
// workload.
var progressClient struct {
	sync.Mutex
	c kubernetes.Interface
}

// watchProgress lets reportProgress count the workload's pods and nodes until it ends.
func watchProgress(tCtx ktesting.TContext) {
	progressClient.Lock()
	progressClient.c = tCtx.Client()
	progressClient.Unlock()
	tCtx.Cleanup(func() {
		progressClient.Lock()
		progressClient.c = nil
		progressClient.Unlock()
	})
}

// clusterSize counts the pods and nodes in the apiserver with one-item lists: the count comes
// from remainingItemCount, so no pod or node is copied, however large the cluster.
func clusterSize() string {
	progressClient.Lock()
	c := progressClient.c
	progressClient.Unlock()
	if c == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	count := func(list func() (metav1.ListInterface, int, error)) string {
		meta, n, err := list()
		if err != nil {
			return "?"
		}
		if rest := meta.GetRemainingItemCount(); rest != nil {
			n += int(*rest)
		}
		return strconv.Itoa(n)
	}
	pods := count(func() (metav1.ListInterface, int, error) {
		l, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return nil, 0, err
		}
		return l, len(l.Items), nil
	})
	nodes := count(func() (metav1.ListInterface, int, error) {
		l, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return nil, 0, err
		}
		return l, len(l.Items), nil
	})
	return fmt.Sprintf("%s pods and %s nodes in the cluster, ", pods, nodes)
}

// reportProgress prints, every interval, how many pods and nodes the running workload has
// created (so that a long setup of pods created already bound, as Uber's, does not read as 0)
// and how many pods the scheduler has bound, read from the newest per-test log scheduler_perf
// writes under dir. It writes to stderr: make perf filters only the test's stdout.
func reportProgress(testCase, dir string, interval time.Duration) {
	var file string
	var offset int64
	bound := 0
	for range time.Tick(interval) {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		var newest string
		var newestTime time.Time
		for _, l := range logs {
			if st, err := os.Stat(l); err == nil && st.ModTime().After(newestTime) {
				newest, newestTime = l, st.ModTime()
			}
		}
		if newest == "" {
			continue
		}
		if newest != file {
			file, offset, bound = newest, 0, 0
		}
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.NewSectionReader(f, offset, 1<<40))
		f.Close()
		// Count only whole lines; a partial last line is read again next time.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
			offset += int64(len(data))
			bound += bytes.Count(data, []byte("Successfully bound pod to node"))
		}
		fmt.Fprintf(os.Stderr, "  progress %s %s: %s%d pods bound by the scheduler\n", time.Now().UTC().Format("15:04:05"), testCase, clusterSize(), bound)
	}
}

func writeRunRecord(run, testCase string, prov perfrun.Provenance, start time.Time, heap *heapSampler) error {
	dir := flag.Lookup("data-items-dir").Value.String()
	files, err := filepath.Glob(filepath.Join(dir, "BenchmarkPerfScheduling_*.json"))
	if err != nil {
		return err
	}
	var results string
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.ModTime().Before(start) {
			results = filepath.Base(f)
		}
	}
	if results == "" {
		return fmt.Errorf("no result file written in %s since %s", dir, start.Format(time.RFC3339))
	}
	// scheduler_perf names the file after its profile and an RFC 3339 time; ours names the case
	// and leaves out the colons, which break checkouts on some systems.
	named := resultFileName(testCase, results)
	if err := os.Rename(filepath.Join(dir, results), filepath.Join(dir, named)); err != nil {
		return err
	}
	results = named
	peak, err := peakRSS()
	if err != nil {
		return err
	}
	// CPU profiles the workload asked for get this run's name, so the next case keeps its own.
	base := strings.TrimSuffix(results, ".json")
	for _, profile := range []string{"cpu-setup.pprof", "cpu-measured.pprof"} {
		if st, err := os.Stat(filepath.Join(dir, profile)); err == nil && !st.ModTime().Before(start) {
			if err := os.Rename(filepath.Join(dir, profile), filepath.Join(dir, base+"-"+profile)); err != nil {
				return err
			}
		}
	}
	// So does scheduler_perf's throughput over time (<case>_<workload>_<topic>_<RFC 3339>.dat):
	// its topic is "workbench" whichever profile ran, and its time has colons.
	dats, err := filepath.Glob(filepath.Join(dir, "*.dat"))
	if err != nil {
		return err
	}
	for _, f := range dats {
		if st, err := os.Stat(f); err == nil && !st.ModTime().Before(start) {
			if err := os.Rename(f, filepath.Join(dir, base+"-progress.dat")); err != nil {
				return err
			}
		}
	}
	schedulerHeap, err := heap.result(filepath.Join(dir, base+"-heap.pprof"))
	if err != nil {
		return err
	}
	prov.Date = time.Now().UTC().Format(time.RFC3339)
	if err := prov.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(perfrun.Record{Run: run, Case: testCase, Label: flag.Lookup("perf-scheduling-label-filter").Value.String(), Provenance: prov, Results: results, PeakRSSBytes: peak,
		TeamPool: adherence, Sessions: gangLatency, GPUFragmentation: gpuFragmentation, GPUSharing: gpuSharing,
		SchedulerHeap: schedulerHeap}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, strings.TrimSuffix(results, ".json")+".run"), data, 0o644)
}

// peakRSS reads the process's high-water RSS (VmHWM) from /proc.
func peakRSS() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kib * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// registry is every workbench plugin, as the binary registers them; TeamPool's and Gang's
// instances are also kept, so that the prepare hook can wait for them to load their custom
// resources.
var registry = trackPlugins(app.Registry(), teampool.Name, gang.Name)

func BenchmarkPerfScheduling(b *testing.B) {
	if err := writeProfiles("generated"); err != nil {
		b.Fatal(err)
	}
	// Upstream waits 10 minutes for an operation's pods; on 2 cores upstream's topology spread
	// binds the Dense workload's 50,000 initial pods at ~50 pods/s falling to ~38 (measured),
	// which does not fit. The per-test cap of 30 minutes is upstream's and cannot be raised.
	perf.RunBenchmarkPerfScheduling(b, "config.yaml", "workbench", registry, perf.WithPodsSchedulingTimeout(28*time.Minute),
		perf.WithPrepareFn(func(tCtx ktesting.TContext) error {
			watchProgress(tCtx)
			return prepareCluster(tCtx)
		}))
}

// profileNames are the profiles writeProfiles derives, each a side of the workloads' test cases
// (<Shape>_<profile>).
var profileNames = []string{"upstream", "mostallocated", "workbench", "noteampool"}

// writeProfiles derives the schedulers' configurations from the shipped file: scheduler_perf's
// pods name no scheduler, so the profile is renamed default-scheduler; upstream's also loses our
// plugins and their config, and noteampool loses TeamPool and its config. mostallocated is
// upstream's with its documented bin-packing for extended resources (NodeResourcesFit's
// MostAllocated scoring strategy) on nvidia.com/gpu alone: the best packing upstream offers for
// GPU pods, for the GPUFragmentation workload. Nothing else differs.
func writeProfiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range profileNames {
		var cfg map[string]any
		if err := yaml.Unmarshal(manifests.SchedulerConfig, &cfg); err != nil {
			return err
		}
		delete(cfg, "leaderElection")
		delete(cfg, "clientConnection")
		profile := cfg["profiles"].([]any)[0].(map[string]any)
		profile["schedulerName"] = "default-scheduler"
		switch name {
		case "upstream":
			delete(profile, "plugins")
			delete(profile, "pluginConfig")
		case "mostallocated":
			delete(profile, "plugins")
			// Only the GPU in the list: every pod here asks for CPU and memory in proportion
			// to its GPUs, so they would add nothing to the ranking. NodeResourcesFit keeps its
			// default weight, as upstream's bin-packing documentation configures it.
			profile["pluginConfig"] = []any{map[string]any{
				"name": "NodeResourcesFit",
				"args": map[string]any{"scoringStrategy": map[string]any{
					"type":      "MostAllocated",
					"resources": []any{map[string]any{"name": string(gpuResource), "weight": 1}},
				}},
			}}
		case "noteampool":
			if err := removePlugin(profile, teampool.Name); err != nil {
				return err
			}
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// removePlugin drops a plugin from every extension point's enabled list of a profile and its
// pluginConfig entry; it is an error if the profile did not enable it.
func removePlugin(profile map[string]any, name string) error {
	found := false
	keep := func(list []any) []any {
		var out []any
		for _, e := range list {
			if m, ok := e.(map[string]any); ok && m["name"] == name {
				found = true
				continue
			}
			out = append(out, e)
		}
		return out
	}
	plugins, _ := profile["plugins"].(map[string]any)
	for _, point := range plugins {
		if p, ok := point.(map[string]any); ok {
			if enabled, ok := p["enabled"].([]any); ok {
				p["enabled"] = keep(enabled)
			}
		}
	}
	if !found {
		return fmt.Errorf("the shipped profile does not enable %s", name)
	}
	if cfg, ok := profile["pluginConfig"].([]any); ok {
		profile["pluginConfig"] = keep(cfg)
	}
	return nil
}

// resultFileName turns scheduler_perf's "BenchmarkPerfScheduling_benchmark_<name>_<RFC 3339>.json"
// into "<testCase>_<20261201T212819Z>.json".
func resultFileName(testCase, results string) string {
	stamp := strings.TrimSuffix(results[strings.LastIndex(results, "_")+1:], ".json")
	stamp = strings.NewReplacer("-", "", ":", "").Replace(stamp)
	return testCase + "_" + stamp + ".json"
}
