// Package perfrun is the run record bench/perf writes beside each scheduler_perf result file
// and bench/cmd/perfreport reads: one per process, i.e. per test case and repeat.
package perfrun

// Record ties one process's scheduler_perf result file to its run, its test case and the
// process's peak RSS. make perf runs one test case per process, so the peak is that case's:
// apiserver and scheduler (in-process), not etcd (a child process).
type Record struct {
	Run          string `json:"run"`
	Case         string `json:"case"`
	Label        string `json:"label"`
	Commit       string `json:"commit"`
	Results      string `json:"results"`
	PeakRSSBytes int64  `json:"peakRSSBytes"`
}
