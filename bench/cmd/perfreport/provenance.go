package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
)

// notesFile, beside the run records, quotes what bench/RESULTS.md said about the code and machine
// of runs whose records predate provenance. perfreport prints the quotes as quotes, beside "not
// recorded": they are what a person wrote, not what the run recorded.
const notesFile = "provenance-notes.json"

type provenanceNotes struct {
	About string `json:"about"`
	Notes []struct {
		// Runs are the run names the note is about.
		Runs []string `json:"runs"`
		// Source says where the quote was, e.g. "bench/RESULTS.md at 48201d0, TeamPool section".
		Source string `json:"source"`
		// Said is the quote.
		Said string `json:"said"`
	} `json:"notes"`
}

// addProvenance keeps the record's provenance if the row has none with the same code and
// machine; dates are compared by provenanceMarkdown.
func (rw *row) addProvenance(p perfrun.Provenance) {
	for i, q := range rw.provs {
		if sameSource(p, q) {
			if p.Date < q.Date {
				rw.provs[i].Date = p.Date
			}
			return
		}
	}
	rw.provs = append(rw.provs, p)
}

func sameSource(p, q perfrun.Provenance) bool {
	pc, pd := p.Code()
	qc, qd := q.Code()
	return pc == qc && pd == qd && p.Recorded() == q.Recorded() && p.CPU == q.CPU && p.Cores == q.Cores && p.GoVersion == q.GoVersion
}

// commitCell is the commit as the tables' "run (commit)" column shows it.
func commitCell(p perfrun.Provenance) string {
	commit, dirty := p.Code()
	if dirty {
		commit += "+dirty"
	}
	return commit
}

// provenanceMarkdown lists, per run and distinct code and machine, what the run records of the
// rows say: never the machine or commit generating the report.
func provenanceMarkdown(rows []*row, notes *provenanceNotes) string {
	type group struct {
		run       string
		prov      perfrun.Provenance
		rows      int
		firstDate string
		lastDate  string
	}
	var groups []*group
	for _, r := range rows {
		for _, p := range r.provs {
			var g *group
			for _, h := range groups {
				if h.run == r.run && sameSource(h.prov, p) {
					g = h
				}
			}
			if g == nil {
				g = &group{run: r.run, prov: p, firstDate: day(p.Date), lastDate: day(p.Date)}
				groups = append(groups, g)
			}
			g.rows++
			if d := day(p.Date); d != "" && (g.firstDate == "" || d < g.firstDate) {
				g.firstDate = d
			}
			if d := day(p.Date); d > g.lastDate {
				g.lastDate = d
			}
		}
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return strings.Compare(a.run, b.run) })

	const missing = "not recorded"
	var b strings.Builder
	fmt.Fprintln(&b, "Where each run was measured, from its run records (`*.run`), not from the machine that generated this table:")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "| run | rows | commit | working tree | CPU | cores | Go | date |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	var legacy []string
	for _, g := range groups {
		commit, dirty := g.prov.Code()
		tree := "clean"
		if dirty {
			tree = "uncommitted changes"
		}
		cpu, cores, goVersion, date := missing, missing, missing, missing
		if g.prov.Recorded() {
			cpu, cores, goVersion, date = orMissing(g.prov.CPU), strconv.Itoa(g.prov.Cores), orMissing(g.prov.GoVersion), g.firstDate
			if g.lastDate != g.firstDate {
				date += " to " + g.lastDate
			}
		} else {
			legacy = append(legacy, g.run)
			// make perf appended "+dirty" for changes to tracked files only.
			tree = "tracked files clean"
			if dirty {
				tree = "tracked files changed"
			}
		}
		if commit == "" {
			commit, tree = missing, missing
		} else {
			commit = "`" + commit + "`"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", g.run, g.rows, commit, tree, cpu, cores, goVersion, date)
	}
	fmt.Fprintln(&b)
	if quotes := quoted(legacy, notes); quotes != "" {
		fmt.Fprintln(&b, "Runs recorded before records carried their machine; what was written about them, quoted (not recorded by the runs):")
		fmt.Fprintln(&b)
		b.WriteString(quotes)
		fmt.Fprintln(&b)
	}
	return b.String()
}

// quoted is the notes on any of the runs, each once, naming the runs of this section it covers.
func quoted(runs []string, notes *provenanceNotes) string {
	if notes == nil {
		return ""
	}
	var b strings.Builder
	for _, n := range notes.Notes {
		var covered []string
		for _, run := range n.Runs {
			if slices.Contains(runs, run) && !slices.Contains(covered, run) {
				covered = append(covered, run)
			}
		}
		if len(covered) == 0 {
			continue
		}
		slices.Sort(covered)
		fmt.Fprintf(&b, "- %s: %s: \"%s\"\n", strings.Join(covered, ", "), n.Source, n.Said)
	}
	return b.String()
}

func orMissing(s string) string {
	if s == "" {
		return "not recorded"
	}
	return s
}

// day is the date of an RFC 3339 time.
func day(date string) string {
	d, _, _ := strings.Cut(date, "T")
	return d
}
