package perfrun

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Provenance is what a measurement was taken from: the code and the machine. perfreport prints
// it beside the figures it measured, so that no figure reads as coming from the commit or the
// machine that generated the report.
type Provenance struct {
	// Commit is the commit of the code measured (git rev-parse --short HEAD).
	Commit string `json:"commit"`
	// Dirty says the working tree differed from Commit, untracked files included.
	Dirty bool `json:"dirty"`
	// CPU is the model name /proc/cpuinfo reports.
	CPU string `json:"cpu,omitempty"`
	// Cores is the number of logical CPUs the process could use.
	Cores int `json:"cores,omitempty"`
	// GoVersion is the Go toolchain that built the benchmark.
	GoVersion string `json:"goVersion,omitempty"`
	// Date is when the measurement was recorded, RFC 3339 in UTC.
	Date string `json:"date,omitempty"`
}

// Environment variables through which make passes the commit it built, so that every case of
// one invocation records the same one; without them Current asks git.
const (
	CommitEnv = "PERF_COMMIT"
	DirtyEnv  = "PERF_DIRTY"
)

// Current is this process's provenance, dated now. It is an error not to know the commit:
// a figure without the code it measured cannot be traced.
func Current() (Provenance, error) {
	commit, dirty, err := code()
	if err != nil {
		return Provenance{}, err
	}
	return Provenance{
		Commit:    commit,
		Dirty:     dirty,
		CPU:       cpuModel(),
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Date:      time.Now().UTC().Format(time.RFC3339),
	}, nil
}

// Validate refuses a provenance without a commit.
func (p Provenance) Validate() error {
	if p.Commit == "" || p.Commit == "unknown" {
		return fmt.Errorf("no commit: results are recorded only with the commit they measured (run them from a git checkout, or set %s and %s)", CommitEnv, DirtyEnv)
	}
	return nil
}

// Recorded reports whether the record carried its machine and date: records written before
// provenance was recorded have at most a commit, with "+dirty" appended for a working tree with
// changes to tracked files (Code reads that form too).
func (p Provenance) Recorded() bool { return p.Date != "" }

// Code is the commit and the dirty flag, from either form of record.
func (p Provenance) Code() (commit string, dirty bool) {
	if c, ok := strings.CutSuffix(p.Commit, "+dirty"); ok {
		return c, true
	}
	return p.Commit, p.Dirty
}

func code() (string, bool, error) {
	if commit := os.Getenv(CommitEnv); commit != "" {
		dirty, err := strconv.ParseBool(os.Getenv(DirtyEnv))
		if err != nil {
			return "", false, fmt.Errorf("%s=%q: %s must be true or false beside %s", DirtyEnv, os.Getenv(DirtyEnv), DirtyEnv, CommitEnv)
		}
		return commit, dirty, Provenance{Commit: commit}.Validate()
	}
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "", false, fmt.Errorf("no commit: %s is unset and git rev-parse HEAD failed (%w); results are recorded only with the commit they measured", CommitEnv, err)
	}
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		return "", false, fmt.Errorf("git status: %w", err)
	}
	return strings.TrimSpace(string(out)), len(strings.TrimSpace(string(status))) > 0, nil
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}
