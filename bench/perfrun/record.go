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
	// TeamPool is where the TeamPool workload's pods went, checked after the run; nil for
	// other workloads.
	TeamPool *Adherence `json:"teamPool,omitempty"`
}

// Adherence is how a TeamPool workload's bound pods sit against their teams' tiers, read from
// the apiserver once every pod is bound. Pools only fill during the workload (nothing is
// deleted), so a pod was in its best tier with room when it was scheduled exactly when no node
// of a better tier for its team still has room for its requests at the end.
type Adherence struct {
	// Pods is how many bound pods were checked.
	Pods int `json:"pods"`
	// InBestTier is how many of them no better tier had room for.
	InBestTier int `json:"inBestTier"`
	// ByTier counts the pods by the tier of their node for their team: own, ancestor, shared,
	// unpooled, lent, forbidden (another team's pool that is not lendable).
	ByTier map[string]int `json:"byTier"`
	// Violations describes the first pods not in their best tier.
	Violations []string `json:"violations,omitempty"`
}

// Share is InBestTier as a fraction of Pods.
func (a *Adherence) Share() float64 {
	if a == nil || a.Pods == 0 {
		return 0
	}
	return float64(a.InBestTier) / float64(a.Pods)
}
