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
