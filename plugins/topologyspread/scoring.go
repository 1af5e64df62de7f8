package topologyspread

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

const invalidScore = -1

// preScoreState holds, per soft constraint, the domain counts (zone-like keys) or the per-node
// counts (hostname) as of this cycle, read in place by Score.
type preScoreState struct {
	delegated   bool
	constraints []topologySpreadConstraint
	// ignoredNodes miss some topology key (only when all keys are required).
	ignoredNodes sets.Set[string]
	domains      []*domainCounts   // nil for hostname constraints
	perNode      []*selectorCounts // set for hostname constraints
	weights      []float64
	index        *spreadIndex
}

// Clone shares the state: Score never writes it.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore reads this cycle's counts for the pod's soft constraints.
func (pl *IndexedPodTopologySpread) PreScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, filteredNodes []fwk.NodeInfo) *fwk.Status {
	allNodes, err := pl.sharedLister.NodeInfos().List()
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("getting all nodes: %w", err))
	}
	if len(allNodes) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	if cycleState.IsPodGroupSchedulingCycle() {
		cycleState.Write(preScoreStateKey, &preScoreState{delegated: true})
		return pl.upstream.PreScore(ctx, cycleState, pod, filteredNodes)
	}
	constraints, err := pl.getConstraints(pod, v1.ScheduleAnyway)
	if err != nil {
		if len(pod.Spec.TopologySpreadConstraints) > 0 {
			err = fmt.Errorf("obtaining pod's soft topology spread constraints: %w", err)
		} else {
			err = fmt.Errorf("setting default soft topology spread constraints: %w", err)
		}
		return fwk.AsStatus(fmt.Errorf("calculating preScoreState: %w", err))
	}
	if len(constraints) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	// Only require that nodes have all the topology labels if using non-system-default
	// spreading rules, as upstream does: nodes without a zone label still get hostname spreading.
	requireAllTopologies := len(pod.Spec.TopologySpreadConstraints) > 0 || !pl.systemDefaulted
	s := &preScoreState{
		constraints:  constraints,
		ignoredNodes: sets.New[string](),
		domains:      make([]*domainCounts, len(constraints)),
		perNode:      make([]*selectorCounts, len(constraints)),
		weights:      make([]float64, len(constraints)),
		index:        pl.index,
	}

	// Domain sizes come from the filtered nodes, as upstream computes them.
	topoValues := make([]sets.Set[string], len(constraints))
	for i := range constraints {
		topoValues[i] = sets.New[string]()
	}
	for _, ni := range filteredNodes {
		node := ni.Node()
		if requireAllTopologies && !nodeLabelsMatchSpreadConstraints(node.Labels, constraints) {
			s.ignoredNodes.Insert(node.Name)
			continue
		}
		for i := range constraints {
			if constraints[i].TopologyKey != v1.LabelHostname {
				topoValues[i].Insert(node.Labels[constraints[i].TopologyKey])
			}
		}
	}
	for i, c := range constraints {
		sz := topoValues[i].Len()
		if c.TopologyKey == v1.LabelHostname {
			sz = len(filteredNodes) - len(s.ignoredNodes)
		}
		s.weights[i] = topologyNormalizingWeight(sz)
	}

	var keys []string
	if requireAllTopologies {
		keys = topologyKeys(constraints)
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	filterKeys := newPodKeys(pod)
	logger := klog.FromContext(ctx)

	pl.index.mu.Lock()
	// PreFilter of this cycle already synced the index with the same snapshot.
	if pf, err := getPreFilterState(cycleState); err != nil || pf.delegated {
		pl.index.sync(logger, allNodes)
	}
	for i := range constraints {
		c := &constraints[i]
		var err error
		if c.TopologyKey == v1.LabelHostname {
			s.perNode[i], err = pl.index.selectorFor(ctx, pod.Namespace, c.Selector)
		} else {
			s.domains[i], err = pl.index.aggregateFor(ctx, logger, pod.Namespace, c.Selector, c.TopologyKey, keys, pl.nodeFilterFor(pod, c, filterKeys, &affinity))
		}
		if err != nil {
			pl.index.mu.Unlock()
			return fwk.AsStatus(fmt.Errorf("counting pods for topology spread: %w", err))
		}
	}
	publishFigures(pl.index)
	pl.index.mu.Unlock()

	cycleState.Write(preScoreStateKey, s)
	return nil
}

// Score returns the pods matching on the node's domains, weighted; NormalizeScore inverts it.
func (pl *IndexedPodTopologySpread) Score(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getPreScoreState(cycleState)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	if s.delegated {
		return pl.upstream.Score(ctx, cycleState, pod, nodeInfo)
	}
	node := nodeInfo.Node()
	if s.ignoredNodes.Has(node.Name) {
		return 0, nil
	}
	var score float64
	for i, c := range s.constraints {
		tpVal, ok := node.Labels[c.TopologyKey]
		if !ok {
			continue
		}
		var cnt int64
		if sc := s.perNode[i]; sc != nil {
			if id := s.index.slotOf(node.Name); id >= 0 && s.index.slots[id].info == nodeInfo {
				cnt = sc.count(id)
			} else {
				// A node outside the snapshot's list: count it as upstream does.
				cnt = int64(countPodsMatchSelector(nodeInfo.GetPods(), c.Selector, pod.Namespace))
			}
		} else {
			n, _ := s.domains[i].podsIn(tpVal)
			cnt = int64(n)
		}
		score += scoreForCount(cnt, c.MaxSkew, s.weights[i])
	}
	return int64(math.Round(score)), nil
}

// NormalizeScore is upstream's: fewer matching pods score higher.
func (pl *IndexedPodTopologySpread) NormalizeScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	s, err := getPreScoreState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.delegated {
		return pl.upstream.NormalizeScore(ctx, cycleState, pod, scores)
	}
	var minScore int64 = math.MaxInt64
	var maxScore int64
	for i, score := range scores {
		if s.ignoredNodes.Has(score.Name) {
			scores[i].Score = invalidScore
			continue
		}
		if score.Score < minScore {
			minScore = score.Score
		}
		if score.Score > maxScore {
			maxScore = score.Score
		}
	}
	for i := range scores {
		if scores[i].Score == invalidScore {
			scores[i].Score = 0
			continue
		}
		if maxScore == 0 {
			scores[i].Score = fwk.MaxNodeScore
			continue
		}
		sc := scores[i].Score
		scores[i].Score = fwk.MaxNodeScore * (maxScore + minScore - sc) / maxScore
	}
	return nil
}

// ScoreExtensions returns NormalizeScore.
func (pl *IndexedPodTopologySpread) ScoreExtensions() fwk.ScoreExtensions { return pl }

func getPreScoreState(cycleState fwk.CycleState) (*preScoreState, error) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return nil, fmt.Errorf("error reading %q from cycleState: %w", preScoreStateKey, err)
	}
	s, ok := c.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%+v  convert to topologyspread.preScoreState error", c)
	}
	return s, nil
}

// topologyNormalizingWeight and scoreForCount are upstream's.
func topologyNormalizingWeight(size int) float64 {
	return math.Log(float64(size + 2))
}

func scoreForCount(cnt int64, maxSkew int32, tpWeight float64) float64 {
	return float64(cnt)*tpWeight + float64(maxSkew-1)
}
