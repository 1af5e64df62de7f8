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
	// GPUFragmentation is how many whole-node GPU requests the GPUFragmentation workload's
	// fill left placeable, checked after the run; nil for other workloads.
	GPUFragmentation *GPUFragmentation `json:"gpuFragmentation,omitempty"`
	// GPUSharing is where the GPUSharing workload's sessions went, checked after the run; nil
	// for other workloads.
	GPUSharing *GPUSharing `json:"gpuSharing,omitempty"`
	// SchedulerHeap is the heap the scheduler itself held, from heap profiles sampled during
	// the run; nil for runs recorded before it was sampled.
	SchedulerHeap *HeapSample `json:"schedulerHeap,omitempty"`
}

// HeapSample is the in-use heap of the heap profile, among those sampled every 30 s of a run,
// in which the scheduler's share was largest. The process holds kube-apiserver (its watch
// cache), the informers and the scheduler; a sample counts as the scheduler's when a frame of
// its allocation stack is in the scheduler's packages (k8s.io/kubernetes/pkg/scheduler: cache,
// queue, snapshot, in-tree plugins) or in ours. Objects the shared informers decode are not the
// scheduler's. In-use figures are as of the last garbage collection before the sample.
type HeapSample struct {
	// SchedulerBytes is the heap allocated from the scheduler's packages or ours.
	SchedulerBytes int64 `json:"schedulerBytes"`
	// WorkbenchBytes is the part of SchedulerBytes allocated from our packages (plugins, pkg).
	WorkbenchBytes int64 `json:"workbenchBytes"`
	// TotalBytes is the whole process's in-use heap in the same profile.
	TotalBytes int64 `json:"totalBytes"`
	// Samples is how many heap profiles were taken.
	Samples int `json:"samples"`
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

// GPUFragmentation is what a fill of small GPU requests left for whole-node requests: after the
// fill (1-, 2- and 4-GPU pods), one whole-node request per GPU node is offered, and Placed counts
// those the scheduler bound. Optimum is the most that any placement of the same fill could have
// left room for, computed per class of nodes: a class's nodes all have the same number of GPUs,
// and a fill of G GPUs needs at least ceil(G / GPUs per node) of them (exactly that many when
// every request divides a node's GPUs, as 1, 2 and 4 divide 8: first-fit decreasing fills each
// node before the next), so at most nodes - ceil(G / GPUs per node) stay empty. The fill counted
// is every fill pod offered, bound or not, so the optimum is the same for every profile.
type GPUFragmentation struct {
	// Classes are the GPU nodes by what may use them: one class per product that pods name in
	// their nodeSelector (only those pods use its nodes), and "generic" for the nodes of every
	// other product (only pods naming no product use them). Sorted by name.
	Classes []GPUClass `json:"classes"`
	// The sums over the classes.
	GPUClass
}

// GPUClass is one class of GPU nodes and the pods that may use them.
type GPUClass struct {
	// Name is the product, or "generic".
	Name string `json:"name"`
	// Nodes counts the class's GPU nodes; GPUsPerNode is their allocatable GPUs (0 in sums).
	Nodes       int   `json:"nodes"`
	GPUsPerNode int64 `json:"gpusPerNode,omitempty"`
	// FillPods and FillGPUs are the fill offered; FillBound the fill pods bound.
	FillPods  int   `json:"fillPods"`
	FillGPUs  int64 `json:"fillGPUs"`
	FillBound int   `json:"fillBound"`
	// EmptyAfterFill counts the nodes that no fill pod was bound to.
	EmptyAfterFill int `json:"emptyAfterFill"`
	// Offered and Placed count the whole-node requests.
	Offered int `json:"offered"`
	Placed  int `json:"placed"`
	// Optimum is min(Offered, Nodes - ceil(FillGPUs / GPUsPerNode)), at least 0.
	Optimum int `json:"optimum"`
}

// Share is Placed as a fraction of Optimum (1 when the optimum is 0).
func (c GPUClass) Share() float64 {
	if c.Optimum == 0 {
		return 1
	}
	return float64(c.Placed) / float64(c.Optimum)
}

// GPUSharing is where the GPUSharing workload's sessions went: by what each asked for (mig: a
// MIG slice, shared: a time-sliced GPU, whole: a whole GPU, cpu: no GPU) and the kind of node it
// is bound to (mig, shared or whole: the GPU resource the node advertises; cpu: none).
type GPUSharing struct {
	// Pods counts the sessions.
	Pods int `json:"pods"`
	// Placed counts bound sessions by what they asked for, then by kind of node.
	Placed map[string]map[string]int `json:"placed"`
	// Unbound counts sessions still unbound when the check ended, by what they asked for.
	Unbound map[string]int `json:"unbound,omitempty"`
	// CPUPodsOnGPUNodes counts sessions without a GPU request bound to a GPU node.
	CPUPodsOnGPUNodes int `json:"cpuPodsOnGPUNodes"`
}
