package teampool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/narrowing"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/tierhint"
)

const (
	rankForbidden = orgtree.RankForbidden
	rankShared    = orgtree.RankShared
	rankLent      = orgtree.RankLent
	rankLast      = orgtree.RankLast
)

// rankOf places a pool (nil: a node in no pool) for a pod of team t.
func rankOf(p *pool, t orgtree.Team, unpooledRank int) int {
	if p == nil {
		return unpooledRank
	}
	return orgtree.Rank(t, p.owner, p.lendable)
}

// tierName labels a rank in metrics; nodes in no pool are "unpooled" whatever their rank.
func tierName(rank int, unpooled bool) string {
	if unpooled {
		return "unpooled"
	}
	return orgtree.TierName(rank)
}

// preFilterState is the pod's team and how each pool ranks for it; read-only after PreFilter.
type preFilterState struct {
	team orgtree.Team
	// rank of each pool known at PreFilter; pools added later are ranked when met.
	rank map[*pool]int
	// narrowedTo is the rank PreFilter limited the cycle to, or -1.
	narrowedTo int
	request    amounts
}

// Clone returns the state itself: nothing in it changes after PreFilter.
func (s *preFilterState) Clone() fwk.StateData { return s }

func (pl *TeamPool) rankNode(s *preFilterState, nodeName string) (int, *pool) {
	p := pl.index.poolOf(nodeName)
	if p == nil {
		return pl.unpooledRank, nil
	}
	if r, ok := s.rank[p]; ok {
		return r, p
	}
	return rankOf(p, s.team, pl.unpooledRank), p
}

// podFit is what PreFilter checks to decide whether a tier has room: resources, required node
// affinity and taints, the checks that decide most placements. Others (GPU rules, spreading)
// are left to Filter; when they reject a whole tier, PostFilter moves the pod on.
type podFit struct {
	pod      *v1.Pod
	requests v1.ResourceList
	affinity nodeaffinity.RequiredNodeAffinity
}

func (f *podFit) hasRoom(logger klog.Logger, ni fwk.NodeInfo) bool {
	node := ni.Node()
	if node == nil {
		return false
	}
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	if int64(len(ni.GetPods()))+1 > int64(alloc.GetAllowedPodNumber()) {
		return false
	}
	for name, q := range f.requests {
		var free int64
		switch name {
		case v1.ResourceCPU:
			free = alloc.GetMilliCPU() - used.GetMilliCPU()
			if q.MilliValue() > free {
				return false
			}
			continue
		case v1.ResourceMemory:
			free = alloc.GetMemory() - used.GetMemory()
		case v1.ResourceEphemeralStorage:
			free = alloc.GetEphemeralStorage() - used.GetEphemeralStorage()
		case v1.ResourcePods:
			continue
		default:
			free = alloc.GetScalarResources()[name] - used.GetScalarResources()[name]
		}
		if q.Value() > free {
			return false
		}
	}
	if match, err := f.affinity.Match(node); err != nil || !match {
		return false
	}
	if node.Spec.Unschedulable && !v1helper.TolerationsTolerateTaint(logger, f.pod.Spec.Tolerations,
		&v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}, false) {
		return false
	}
	_, untolerated := v1helper.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, f.pod.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
	}, false)
	return !untolerated
}

// tier is the pools of one rank.
type tier struct {
	rank  int
	pools []poolSummary
}

// PreFilter resolves the pod's team, ranks every pool for it and narrows the cycle to the
// nodes of the best tier that has room: at 5,000 nodes the scheduler stops filtering after
// percentageOfNodesToScore feasible nodes, so Score alone would rarely see the pod's own pool.
func (pl *TeamPool) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if !pl.synced() {
		return nil, fwk.AsStatus(fmt.Errorf("ResourcePools, nodes and pods are not loaded yet (is the ResourcePool CRD installed?)"))
	}
	t, err := pl.teams.teamOf(pod)
	if err != nil {
		if r := pl.handle.EventRecorder(); r != nil {
			r.Eventf(pod, nil, v1.EventTypeWarning, EventReasonInvalidTeam, "Scheduling", "%s", err.Error())
		}
		countRejection("invalid_team")
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	// Read before the summaries: a change in between only costs a rebuild of a tier's set.
	membership := pl.index.membership.Load()
	pools, unpooled := pl.index.summaries()
	if len(pools) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	s := &preFilterState{team: t, rank: make(map[*pool]int, len(pools)), narrowedTo: -1,
		request: pl.index.amountsOf(requests)}
	byRank := map[int]*tier{}
	for _, ps := range pools {
		if ps.pool.invalid != "" {
			continue
		}
		r := rankOf(ps.pool, t, pl.unpooledRank)
		s.rank[ps.pool] = r
		if r == rankForbidden || ps.nodeCount == 0 {
			continue
		}
		if byRank[r] == nil {
			byRank[r] = &tier{rank: r}
		}
		byRank[r].pools = append(byRank[r].pools, ps)
	}
	if unpooled.nodeCount > 0 {
		if byRank[pl.unpooledRank] == nil {
			byRank[pl.unpooledRank] = &tier{rank: pl.unpooledRank}
		}
		byRank[pl.unpooledRank].pools = append(byRank[pl.unpooledRank].pools, unpooled)
	}
	cs.Write(preFilterStateKey, s)
	if tierhint.AllTiers(cs) {
		// A gang member planned beyond its best tier: Filter and Score still apply.
		return nil, nil
	}

	tiers := make([]*tier, 0, len(byRank))
	for _, tr := range byRank {
		tiers = append(tiers, tr)
	}
	slices.SortFunc(tiers, func(a, b *tier) int { return a.rank - b.rank })
	skip := pl.skipThrough(pod.UID, time.Now())
	fit := &podFit{pod: pod, requests: requests, affinity: nodeaffinity.GetRequiredNodeAffinity(pod)}
	logger := klog.FromContext(ctx)
	nodeInfos := pl.handle.SnapshotSharedLister().NodeInfos()
	for i, tr := range tiers {
		if tr.rank <= skip {
			continue
		}
		if !pl.tierHasRoom(logger, fit, tr, nodeInfos) {
			continue
		}
		if i == len(tiers)-1 && skip < 0 && len(s.rank) == len(pools) && allUsable(s.rank) {
			// Better tiers have no room and no pool is closed to the pod: every node may be
			// filtered, and those of better tiers fail on resources as the room check did.
			return nil, nil
		}
		s.narrowedTo = tr.rank
		nodes := pl.tierSets.get(membership, tr)
		// Recorded for plugins later in the chain that narrow by preference (GPUAffinity): they
		// choose within the tier, so the framework's intersection cannot come out empty.
		narrowing.Record(cs, nodes)
		return &fwk.PreFilterResult{NodeNames: nodes}, nil
	}
	// No tier has room: Filter over every node the pod may use gives the usual reasons.
	return nil, nil
}

func allUsable(ranks map[*pool]int) bool {
	for _, r := range ranks {
		if r == rankForbidden {
			return false
		}
	}
	return true
}

func (pl *TeamPool) tierHasRoom(logger klog.Logger, fit *podFit, tr *tier, nodeInfos fwk.NodeInfoLister) bool {
	for _, ps := range tr.pools {
		for name := range ps.nodes {
			ni, err := nodeInfos.Get(name)
			if err == nil && fit.hasRoom(logger, ni) {
				return true
			}
		}
	}
	return false
}

// tierSetCache keeps the node sets of tiers of several pools until membership changes: the
// shared tier of a large cluster is thousands of nodes, too many to copy every cycle.
type tierSetCache struct {
	mu         sync.Mutex
	membership uint64
	sets       map[string]sets.Set[string]
}

func (c *tierSetCache) get(membership uint64, tr *tier) sets.Set[string] {
	if len(tr.pools) == 1 {
		return tr.pools[0].nodes
	}
	names := make([]string, len(tr.pools))
	for i, ps := range tr.pools {
		names[i] = ps.pool.name // "" is the unpooled nodes; no pool has an empty name
	}
	slices.Sort(names)
	key := strings.Join(names, "/")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sets == nil || c.membership != membership {
		c.sets, c.membership = map[string]sets.Set[string]{}, membership
	}
	if s, ok := c.sets[key]; ok {
		return s
	}
	s := tierNodes(tr)
	if len(c.sets) < 1024 {
		c.sets[key] = s
	}
	return s
}

func tierNodes(tr *tier) sets.Set[string] {
	if len(tr.pools) == 1 {
		return tr.pools[0].nodes
	}
	n := 0
	for _, ps := range tr.pools {
		n += ps.nodes.Len()
	}
	out := make(sets.Set[string], n)
	for _, ps := range tr.pools {
		for name := range ps.nodes {
			out.Insert(name)
		}
	}
	return out
}

// PreFilterExtensions returns nil: the state does not depend on other pods.
func (pl *TeamPool) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func getPreFilterState(cs fwk.CycleState) (*preFilterState, error) {
	d, err := cs.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preFilterStateKey, err)
	}
	s, ok := d.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v is not a %s preFilterState", d, Name)
	}
	return s, nil
}

// Filter rejects nodes in another team's pool that is not lendable.
func (pl *TeamPool) Filter(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cs)
	if err != nil {
		return fwk.AsStatus(err)
	}
	rank, p := pl.rankNode(s, nodeInfo.Node().Name)
	if rank != rankForbidden {
		return nil
	}
	countRejection("not_lendable")
	if len(s.team) == 0 {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
			"node is in pool %s of team %s, which does not lend it; the pod has no team (label %s on the pod or its namespace)",
			p.name, p.owner, TeamLabel))
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
		"node is in pool %s of team %s, which does not lend it to team %s", p.name, p.owner, s.team))
}

// PostFilter runs when no node passed Filter. If PreFilter had narrowed the cycle to a tier,
// every node of that tier failed some other filter: the pod's next attempt starts at the next
// tier, and the pod is retried at once rather than waiting for a cluster event. It runs before
// DefaultPreemption (shipped config) and then stops the chain: nobody is preempted in this
// tier while a lower tier may have room; without narrowing, preemption runs as upstream.
func (pl *TeamPool) PostFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	s, err := getPreFilterState(cs)
	if err != nil || s.narrowedTo < 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	pl.rememberFallback(pod.UID, s.narrowedTo, time.Now())
	klog.FromContext(ctx).V(4).Info("Every node of the pod's best tier failed Filter; trying the next tier", "pod", klog.KObj(pod), "rank", s.narrowedTo)
	pl.handle.Activate(klog.FromContext(ctx), map[string]*v1.Pod{string(pod.UID): pod})
	return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("no node of the pod's best %s tier passed the filters; trying the next tier", tierName(s.narrowedTo, false)))
}
