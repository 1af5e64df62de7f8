package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
)

const (
	publishedResults = "../../results/perf"
	publishedDoc     = "../../RESULTS.md"
	publishedChart   = "../../perf-throughput.svg"
)

// TestPublishedResultsUpToDate guards bench/RESULTS.md: its generated sections and the chart
// must be what the committed raw files in bench/results/perf give (make verify runs it).
func TestPublishedResultsUpToDate(t *testing.T) {
	doc, chart := read(t, publishedDoc), read(t, publishedChart)
	diffs, err := stale(publishedResults, doc, chart, filepath.Base(publishedChart))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("bench/RESULTS.md is out of date with bench/results/perf/ (make bench-publish regenerates it): %s", d)
	}
}

// TestStaleNoticesChangedRawFile changes one committed figure in a copy of the raw files: the
// published section no longer matches, and the check says where.
func TestStaleNoticesChangedRawFile(t *testing.T) {
	dir := t.TempDir()
	entries, err := os.ReadDir(publishedResults)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".json") || strings.HasSuffix(e.Name(), ".run")) {
			continue
		}
		data := read(t, filepath.Join(publishedResults, e.Name()))
		if strings.HasPrefix(e.Name(), "Uber_workbench_") && strings.HasSuffix(e.Name(), ".run") {
			// Another peak RSS: the Uber row's last cells change.
			data = strings.Replace(data, `"peakRSSBytes": `, `"peakRSSBytes": 1`, 1)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	diffs, err := stale(dir, read(t, publishedDoc), read(t, publishedChart), filepath.Base(publishedChart))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "| Uber/7500Nodes_200000Pods |") {
		t.Errorf("stale() = %q, want the Uber row named as out of date", diffs)
	}
}

func TestProvenancePrintsTheRecordsNeverTheGenerator(t *testing.T) {
	recorded := perfrun.Provenance{Commit: "abc1234", Dirty: true, CPU: "Some CPU 9000", Cores: 64, GoVersion: "go1.99.1", Date: "2027-01-02T03:04:05Z"}
	rows := []*row{
		{shape: "A", workload: "w", run: "20270102T030000Z", provs: []perfrun.Provenance{recorded}},
		{shape: "B", workload: "w", run: "20270102T030000Z", provs: []perfrun.Provenance{recorded}},
		{shape: "C", workload: "w", run: "20261123T185005Z", provs: []perfrun.Provenance{{}}},
		{shape: "D", workload: "w", run: "20261123T191456Z", provs: []perfrun.Provenance{{Commit: "205bfa4+dirty"}}},
	}
	notes := &provenanceNotes{}
	notes.Notes = append(notes.Notes, struct {
		Runs   []string `json:"runs"`
		Source string   `json:"source"`
		Said   string   `json:"said"`
	}{Runs: []string{"20261123T185005Z", "elsewhere"}, Source: "RESULTS.md", Said: "Machine: a quoted one"})
	got := provenanceMarkdown(rows, notes)
	for _, want := range []string{
		"| 20270102T030000Z | 2 | `abc1234` | uncommitted changes | Some CPU 9000 | 64 | go1.99.1 | 2027-01-02 |",
		"| 20261123T185005Z | 1 | not recorded | not recorded | not recorded | not recorded | not recorded | not recorded |",
		"| 20261123T191456Z | 1 | `205bfa4` | tracked files changed | not recorded | not recorded | not recorded | not recorded |",
		`- 20261123T185005Z: RESULTS.md: "Machine: a quoted one"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("provenance table lacks %q:\n%s", want, got)
		}
	}
	if host, err := os.Hostname(); err == nil && strings.Contains(got, host) {
		t.Errorf("provenance table names the generating host %q:\n%s", host, got)
	}
}

func read(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestGPUSection(t *testing.T) {
	frag := func(placed int) *perfrun.GPUFragmentation {
		return &perfrun.GPUFragmentation{GPUClass: perfrun.GPUClass{Name: "all", Nodes: 1000, Placed: placed, Optimum: 348}}
	}
	res := func(side, run string, placed int, podsPerSec float64) result {
		return result{shape: gpuShape, workload: "5000Nodes_1000GPUNodes", sideName: side, run: run, commit: "abc1234", throughput: podsPerSec, p50: podsPerSec / 10, p99: podsPerSec, gpu: frag(placed)}
	}
	results := []result{
		// An older run, and a run without upstream's profile: neither is shown.
		res("upstream", "20270101T000000Z", 1, 100), res("workbench", "20270101T000000Z", 2, 100),
		res("workbench", "20270103T000000Z", 300, 100),
		res("upstream", "20270102T000000Z", 10, 150), res("mostallocated", "20270102T000000Z", 125, 140),
		res("workbench", "20270102T000000Z", 330, 120), res("workbench", "20270102T000000Z", 333, 130),
		// Another workload's results are not the section's.
		{shape: "WorkbenchMix", workload: "5000Nodes", sideName: "upstream", run: "20270102T000000Z", throughput: 1},
	}
	doc, _, summary, err := generate("gpu", results, &provenanceNotes{}, "# Results\n", "chart.svg")
	if err != nil {
		t.Fatal(err)
	}
	wantRow := "| GPUFragmentation/5000Nodes_1000GPUNodes | 20270102T000000Z (abc1234) | 1000 | 348 | 10 / 125 / 331.5 | 2.9 % / 35.9 % / 95.3 % | 2.65 | 150.0 / 140.0 / 125.0 | 15.0 / 14.0 / 12.5 ms | 150 / 140 / 125 ms | 2 |"
	if !strings.Contains(doc, wantRow) {
		t.Errorf("section lacks the row\n%s\n%s", wantRow, doc)
	}
	if !strings.HasPrefix(doc, "# Results\n") || !strings.Contains(doc, gpuBeginMarker) || !strings.HasSuffix(doc, gpuEndMarker+"\n") {
		t.Errorf("section not appended between its markers:\n%s", doc)
	}
	if len(summary) != 1 || !strings.Contains(summary[0], "10 / 125 / 331.5 of optimum 348") {
		t.Errorf("summary = %q", summary)
	}

	// Without GPUFragmentation results, -section all leaves the section out until the document
	// has it; then it is an error.
	others := results[len(results)-1:]
	_, _, _, err = generate("gpu", others, &provenanceNotes{}, "# Results\n", "chart.svg")
	if !skipped(err, "gpu", "# Results\n") {
		t.Errorf("generate without results: %v, want it skipped in a document without the section", err)
	}
	if skipped(err, "gpu", doc) {
		t.Errorf("generate without results is skipped in a document with the section")
	}
}

// TestPerfSectionSplitsTheAttempt: the algorithm, bind-call and scheduler-heap columns average a
// run's repeats, and a side whose run did not collect them shows "-", not 0.
func TestPerfSectionSplitsTheAttempt(t *testing.T) {
	res := func(side string, pods, alg, bind, heap float64) result {
		return result{shape: "Dense", workload: "5000Nodes", sideName: side, run: "20270102T000000Z", commit: "abc1234",
			throughput: pods, p50: 50, p99: 500, algorithmP99: alg, bindCallP99: bind, heapMB: heap, rssMB: 1000,
			means: attemptMeans{attempt: alg, algorithm: alg / 2, bind: bind / 10, bindHandler: bind / 20}}
	}
	results := []result{
		res("upstream", 20, 100, 150, 0), res("upstream", 22, 120, 170, 0),
		res("workbench", 80, 10, 300, 210), res("workbench", 84, 14, 340, 250),
	}
	doc, _, _, err := generate("perf", results, &provenanceNotes{}, "# Results\n", "chart.svg")
	if err != nil {
		t.Fatal(err)
	}
	wantRow := "| Dense/5000Nodes | 20270102T000000Z (abc1234) | 21.0 | 82.0 | 3.90 | 50.0 / 50.0 ms | 500 / 500 ms | 110 / 12 ms | 160 / 320 ms | 1000 / 1000 MiB | - / 250 MiB | 2 |"
	if !strings.Contains(doc, wantRow) {
		t.Errorf("section lacks the row\n%s\n%s", wantRow, doc)
	}
	// Means average over repeats and add up: attempt 110 = algorithm 55 + Bind 16 + rest 39.
	wantMeans := "| Dense/5000Nodes | 20270102T000000Z (abc1234) | 110 / 12 ms | 55 / 6 ms | 16 / 32 ms | 8 / 16 ms | 39 / -26 ms | -98 ms | -33 ms |"
	if !strings.Contains(doc, wantMeans) {
		t.Errorf("section lacks the split of the mean\n%s\n%s", wantMeans, doc)
	}
}

func TestPerfSectionLeavesOutRowsWithoutTheSplit(t *testing.T) {
	results := []result{
		{shape: "Basic", workload: "500Nodes", sideName: "upstream", run: "20270102T000000Z", commit: "abc1234", throughput: 10},
		{shape: "Basic", workload: "500Nodes", sideName: "workbench", run: "20270102T000000Z", commit: "abc1234", throughput: 12,
			means: attemptMeans{attempt: 50, algorithm: 5, bind: 20, bindHandler: 10}},
	}
	doc, _, _, err := generate("perf", results, &provenanceNotes{}, "# Results\n", "chart.svg")
	if err != nil {
		t.Fatal(err)
	}
	split := doc[strings.Index(doc, "### The attempt's mean, split"):]
	if strings.Contains(split, "| Basic/500Nodes |") {
		t.Errorf("a row whose upstream side lacks the means is in the split:\n%s", split)
	}
}
