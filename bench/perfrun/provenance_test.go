package perfrun

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCurrentRefusesWithoutCommit(t *testing.T) {
	t.Setenv(CommitEnv, "")
	t.Setenv("PATH", t.TempDir()) // no git
	if _, err := Current(); err == nil || !strings.Contains(err.Error(), "no commit") {
		t.Fatalf("Current() without a commit: got error %v, want one saying there is no commit", err)
	}
}

func TestCurrentFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name, commit, dirty string
		want                *Provenance
	}{
		{name: "clean tree", commit: "abc1234", dirty: "false", want: &Provenance{Commit: "abc1234"}},
		{name: "dirty tree", commit: "abc1234", dirty: "true", want: &Provenance{Commit: "abc1234", Dirty: true}},
		{name: "dirty flag missing is refused", commit: "abc1234", dirty: ""},
		{name: "unknown commit is refused", commit: "unknown", dirty: "false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(CommitEnv, tc.commit)
			t.Setenv(DirtyEnv, tc.dirty)
			got, err := Current()
			if tc.want == nil {
				if err == nil {
					t.Fatalf("Current() = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Commit != tc.want.Commit || got.Dirty != tc.want.Dirty || got.Cores == 0 || got.GoVersion == "" || !got.Recorded() {
				t.Errorf("Current() = %+v, want commit %q, dirty %v and the machine and date filled in", got, tc.want.Commit, tc.want.Dirty)
			}
		})
	}
}

func TestRecordReadsBothForms(t *testing.T) {
	for _, tc := range []struct {
		name, json  string
		wantCommit  string
		wantDirty   bool
		wantRecords bool
	}{
		{name: "before provenance, dirty", json: `{"run":"r","commit":"205bfa4+dirty"}`, wantCommit: "205bfa4", wantDirty: true},
		{name: "before provenance, no commit", json: `{"run":"r"}`},
		{name: "with provenance", json: `{"run":"r","commit":"6b2225d","dirty":true,"cpu":"AMD EPYC","cores":2,"goVersion":"go1.26.8","date":"2026-12-02T10:00:00Z"}`,
			wantCommit: "6b2225d", wantDirty: true, wantRecords: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec Record
			if err := json.Unmarshal([]byte(tc.json), &rec); err != nil {
				t.Fatal(err)
			}
			commit, dirty := rec.Code()
			if commit != tc.wantCommit || dirty != tc.wantDirty || rec.Recorded() != tc.wantRecords {
				t.Errorf("Code() = %q, %v; Recorded() = %v; want %q, %v, %v", commit, dirty, rec.Recorded(), tc.wantCommit, tc.wantDirty, tc.wantRecords)
			}
		})
	}
}

func TestRecordKeepsProvenanceAtTopLevel(t *testing.T) {
	data, err := json.Marshal(Record{Run: "r", Provenance: Provenance{Commit: "abc1234", Cores: 2, Date: "2026-12-02T10:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	var flat map[string]any
	if err := json.Unmarshal(data, &flat); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"commit": "abc1234", "dirty": false, "cores": 2.0, "date": "2026-12-02T10:00:00Z"}
	got := map[string]any{"commit": flat["commit"], "dirty": flat["dirty"], "cores": flat["cores"], "date": flat["date"]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record JSON (-want +got):\n%s", diff)
	}
}
