// Package perfrun is the run record bench/perf writes beside each scheduler_perf result file
// and bench/cmd/perfreport reads: one per process, i.e. per test case and repeat.
package perfrun

// Record ties one process's scheduler_perf result file to its run, its test case, the code
// and machine it measured (Provenance, whose fields sit at the top level of the JSON) and the
// process's peak RSS. make perf runs one test case per process, so the peak is that case's:
// apiserver and scheduler (in-process), not etcd (a child process).
type Record struct {
	Run   string `json:"run"`
	Case  string `json:"case"`
	Label string `json:"label"`
	Provenance
	Results      string `json:"results"`
	PeakRSSBytes int64  `json:"peakRSSBytes"`
	// TeamPool is where the TeamPool workload's pods went, checked after the run; nil for
	// other workloads.
	TeamPool *Adherence `json:"teamPool,omitempty"`
	// Sessions is how fast the Sessions workload's gangs were bound, measured during the run;
	// nil for other workloads.
	Sessions *GangLatency `json:"sessions,omitempty"`
}

// GangLatency is, per gang (the pods sharing a scheduling.x-k8s.io/pod-group label), the time
// from its last member's creation to its last member's binding. Both instants are when a pod
// informer in the benchmark process saw the pod appear and saw it bound: metadata's
// creationTimestamp has a resolution of one second.
type GangLatency struct {
	// Gangs and Pods count the gangs and their members.
	Gangs int `json:"gangs"`
	Pods  int `json:"pods"`
	// P50Ms, P99Ms and MaxMs are nearest-rank percentiles over the fully bound gangs.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// GPUP99Ms is the p99 over the gangs whose members request GPUs.
	GPUP99Ms float64 `json:"gpuP99Ms"`
	// Within2s counts the gangs fully bound within 2 s of their last member's creation.
	Within2s int `json:"within2s"`
	// Unbound counts gangs with a member still unbound when the workload ended.
	Unbound int `json:"unbound"`
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
