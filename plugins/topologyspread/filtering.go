package topologyspread

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
)

// preFilterState is what Filter needs for each hard constraint: the domain counts as of this
// cycle, read in place, plus a small overlay that preemption's AddPod/RemovePod write to.
type preFilterState struct {
	// delegated: upstream's plugin decides this cycle (pod-group cycles).
	delegated   bool
	constraints []topologySpreadConstraint
	views       []domainView
	// paths holds upstream's two critical paths per constraint, computed once on first use by
	// AddPod/RemovePod and shared by the clones preemption makes.
	paths *sharedPaths
}

type domainView struct {
	counts  *domainCounts
	minPods int
	domains int
	// selfMatch is 1 when the incoming pod matches the constraint's selector.
	selfMatch int
	// The overlay is nil until AddPod/RemovePod touches this constraint.
	paths   *criticalPaths
	overlay map[string]int
	// added counts domains the overlay created, as upstream's map grows on += delta.
	added int
}

type sharedPaths struct {
	once  sync.Once
	paths []criticalPaths
}

// Clone copies the overlay only; the base counts are shared and not written during a cycle.
func (s *preFilterState) Clone() fwk.StateData {
	if s == nil {
		return nil
	}
	c := *s
	c.views = slices.Clone(s.views)
	for i := range c.views {
		v := &c.views[i]
		if v.paths != nil {
			p := *v.paths
			v.paths = &p
			v.overlay = maps.Clone(v.overlay)
		}
	}
	return &c
}

// criticalPaths is upstream's: the two domains with the fewest matching pods, kept
// approximately under AddPod/RemovePod exactly as upstream keeps them.
type criticalPaths [2]struct {
	TopologyValue string
	MatchNum      int
}

func newCriticalPaths() criticalPaths {
	return criticalPaths{{MatchNum: math.MaxInt32}, {MatchNum: math.MaxInt32}}
}

func (p *criticalPaths) update(tpVal string, num int) {
	i := -1
	if tpVal == p[0].TopologyValue {
		i = 0
	} else if tpVal == p[1].TopologyValue {
		i = 1
	}
	if i >= 0 {
		p[i].MatchNum = num
		if p[0].MatchNum > p[1].MatchNum {
			p[0], p[1] = p[1], p[0]
		}
	} else {
		if num < p[0].MatchNum {
			p[1] = p[0]
			p[0].TopologyValue, p[0].MatchNum = tpVal, num
		} else if num < p[1].MatchNum {
			p[1].TopologyValue, p[1].MatchNum = tpVal, num
		}
	}
}

func (s *preFilterState) ensurePaths(i int) *domainView {
	v := &s.views[i]
	if v.paths != nil {
		return v
	}
	s.paths.once.Do(func() {
		s.paths.paths = make([]criticalPaths, len(s.views))
		for j := range s.views {
			p := newCriticalPaths()
			s.views[j].counts.forEachDomain(p.update)
			s.paths.paths[j] = p
		}
	})
	p := s.paths.paths[i]
	v.paths = &p
	v.overlay = map[string]int{}
	return v
}

// matchNum returns upstream's TpValueToMatchNum[i][value] and whether the key exists.
func (v *domainView) matchNum(value string) (int, bool) {
	if n, ok := v.overlay[value]; ok {
		return n, true
	}
	return v.counts.podsIn(value)
}

// minMatchNum is upstream's global minimum, 0 while there are fewer domains than minDomains.
func (v *domainView) minMatchNum(minDomains int32) int {
	m := v.minPods
	if v.paths != nil {
		m = v.paths[0].MatchNum
	}
	if v.domains+v.added < int(minDomains) {
		return 0
	}
	return m
}

// PreFilter reads this cycle's domain counts for the pod's hard constraints.
func (pl *IndexedPodTopologySpread) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if pl.fts.EnableInPlacePodVerticalScalingSchedulerPreemption && resource.IsPodResizeDeferred(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if cycleState.IsPodGroupSchedulingCycle() {
		cycleState.Write(preFilterStateKey, &preFilterState{delegated: true})
		return pl.upstream.PreFilter(ctx, cycleState, pod, nodes)
	}
	constraints, err := pl.getConstraints(pod, v1.DoNotSchedule)
	if err != nil {
		if len(pod.Spec.TopologySpreadConstraints) > 0 {
			err = fmt.Errorf("obtaining pod's hard topology spread constraints: %w", err)
		} else {
			err = fmt.Errorf("setting default hard topology spread constraints: %w", err)
		}
		return nil, fwk.AsStatus(fmt.Errorf("get constraints from pod: %w", err))
	}
	if len(constraints) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s := &preFilterState{constraints: constraints, views: make([]domainView, len(constraints)), paths: &sharedPaths{}}
	keys := topologyKeys(constraints)
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	filterKeys := newPodKeys(pod)
	logger := klog.FromContext(ctx)

	podLabelSet := labels.Set(pod.Labels)
	pl.index.mu.Lock()
	pl.index.sync(logger, nodes)
	for i := range constraints {
		c := &constraints[i]
		a, err := pl.index.aggregateFor(ctx, logger, pod.Namespace, c.Selector, c.TopologyKey, keys, pl.nodeFilterFor(pod, c, filterKeys, &affinity))
		if err != nil {
			pl.index.mu.Unlock()
			return nil, fwk.AsStatus(fmt.Errorf("counting pods for topology spread: %w", err))
		}
		s.views[i] = domainView{counts: a, minPods: a.minimum(), domains: a.domains()}
		if c.Selector.Matches(podLabelSet) {
			s.views[i].selfMatch = 1
		}
	}
	publishFigures(pl.index)
	pl.index.mu.Unlock()

	cycleState.Write(preFilterStateKey, s)
	return nil, nil
}

// topologyKeys returns the sorted, distinct topology keys a node must all carry to be counted.
func topologyKeys(constraints []topologySpreadConstraint) []string {
	keys := make([]string, 0, len(constraints))
	for _, c := range constraints {
		keys = append(keys, c.TopologyKey)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// PreFilterExtensions returns the AddPod/RemovePod hooks preemption uses.
func (pl *IndexedPodTopologySpread) PreFilterExtensions() fwk.PreFilterExtensions {
	return pl
}

// AddPod counts podInfoToAdd in the cycle state's overlay.
func (pl *IndexedPodTopologySpread) AddPod(ctx context.Context, cycleState fwk.CycleState, podToSchedule *v1.Pod, podInfoToAdd fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.delegated {
		return pl.upstream.AddPod(ctx, cycleState, podToSchedule, podInfoToAdd, nodeInfo)
	}
	pl.updateWithPod(klog.FromContext(ctx), s, podInfoToAdd.GetPod(), podToSchedule, nodeInfo.Node(), 1)
	return nil
}

// RemovePod uncounts podInfoToRemove in the cycle state's overlay.
func (pl *IndexedPodTopologySpread) RemovePod(ctx context.Context, cycleState fwk.CycleState, podToSchedule *v1.Pod, podInfoToRemove fwk.PodInfo, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.delegated {
		return pl.upstream.RemovePod(ctx, cycleState, podToSchedule, podInfoToRemove, nodeInfo)
	}
	pl.updateWithPod(klog.FromContext(ctx), s, podInfoToRemove.GetPod(), podToSchedule, nodeInfo.Node(), -1)
	return nil
}

func (pl *IndexedPodTopologySpread) updateWithPod(logger klog.Logger, s *preFilterState, updatedPod, preemptorPod *v1.Pod, node *v1.Node, delta int) {
	if s == nil || updatedPod.Namespace != preemptorPod.Namespace || node == nil {
		return
	}
	if !nodeLabelsMatchSpreadConstraints(node.Labels, s.constraints) {
		return
	}
	requiredSchedulingTerm := nodeaffinity.GetRequiredNodeAffinity(preemptorPod)
	if !pl.fts.EnableNodeInclusionPolicyInPodTopologySpread {
		if match, _ := requiredSchedulingTerm.Match(node); !match {
			return
		}
	}
	podLabelSet := labels.Set(updatedPod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		if !c.Selector.Matches(podLabelSet) {
			continue
		}
		if pl.fts.EnableNodeInclusionPolicyInPodTopologySpread &&
			!pl.matchNodeInclusionPolicies(logger, c, preemptorPod, node, requiredSchedulingTerm) {
			continue
		}
		value := node.Labels[c.TopologyKey]
		v := s.ensurePaths(i)
		n, ok := v.matchNum(value)
		if !ok {
			v.added++
		}
		v.overlay[value] = n + delta
		v.paths.update(value, n+delta)
	}
}

func getPreFilterState(cycleState fwk.CycleState) (*preFilterState, error) {
	c, err := cycleState.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycleState: %w", preFilterStateKey, err)
	}
	s, ok := c.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v convert to topologyspread.preFilterState error", c)
	}
	return s, nil
}

// Filter rejects nodes where the pod would push a domain's skew past maxSkew.
func (pl *IndexedPodTopologySpread) Filter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	if pl.fts.EnableInPlacePodVerticalScalingSchedulerPreemption && resource.IsPodResizeDeferred(pod) {
		return nil
	}
	node := nodeInfo.Node()
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.delegated {
		return pl.upstream.Filter(ctx, cycleState, pod, nodeInfo)
	}
	if len(s.constraints) == 0 {
		return nil
	}
	for i := range s.constraints {
		c := &s.constraints[i]
		tpVal, ok := node.Labels[c.TopologyKey]
		if !ok {
			if logger := klog.FromContext(ctx).V(5); logger.Enabled() {
				logger.Info("Node doesn't have required topology label for spread constraint", "node", klog.KObj(node), "topologyKey", c.TopologyKey)
			}
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, podtopologyspread.ErrReasonNodeLabelNotMatch)
		}
		v := &s.views[i]
		minMatchNum := v.minMatchNum(c.MinDomains)
		selfMatchNum := v.selfMatch
		matchNum, _ := v.matchNum(tpVal)
		if skew := matchNum + selfMatchNum - minMatchNum; skew > int(c.MaxSkew) {
			if logger := klog.FromContext(ctx).V(5); logger.Enabled() {
				logger.Info("Node failed spreadConstraint: matchNum + selfMatchNum - minMatchNum > maxSkew", "node", klog.KObj(node), "topologyKey", c.TopologyKey, "matchNum", matchNum, "selfMatchNum", selfMatchNum, "minMatchNum", minMatchNum, "maxSkew", c.MaxSkew)
			}
			return fwk.NewStatus(fwk.Unschedulable, podtopologyspread.ErrReasonConstraintsNotMatch)
		}
	}
	return nil
}
