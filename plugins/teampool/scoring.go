package teampool

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// Scores: each tier level is worth levelPoints, and availability within a tier adds up to
// levelPoints-1, so a better tier always outscores a worse one. With the shipped weight of 200,
// one level is 2,000 points: more than every other score plugin of the profile together can
// give (18 x 100).
const (
	levelPoints = 10
	maxLevel    = 9
	// maxAncestorLevel caps how far up the org tree levels keep apart.
	maxAncestorLevel = 6
)

func level(rank int) int64 {
	switch {
	case rank == 0:
		return 0
	case rank > 0 && rank < rankShared:
		return int64(min(rank, maxAncestorLevel))
	case rank == rankShared:
		return 7
	case rank == rankLent:
		return 8
	}
	return maxLevel
}

// preScoreState holds the availability points of each pool among the scored nodes.
type preScoreState struct {
	filter *preFilterState
	points map[*pool]int64
	// unpooledPoints is for nodes in no pool.
	unpooledPoints int64
}

// Clone returns the state itself: nothing in it changes after PreScore.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore finds the pod's dominant resource (largest share of the candidate pools' capacity)
// and gives each candidate pool points for how much of it is free, relative to the best.
func (pl *TeamPool) PreScore(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	fs, err := getPreFilterState(cs)
	if err != nil {
		// PreFilter skipped: there are no pools.
		return fwk.NewStatus(fwk.Skip)
	}
	type candidate struct{ capacity, free amounts }
	candidates := map[*pool]*candidate{}
	pl.index.mu.RLock()
	for _, ni := range nodes {
		n := pl.index.nodes[ni.Node().Name]
		if n == nil {
			continue
		}
		p := n.pool
		if p == nil {
			p = pl.index.unpooled
		}
		if candidates[p] == nil {
			c := &candidate{capacity: p.capacity, free: p.capacity}
			c.free.sub(p.allocated)
			candidates[p] = c
		}
	}
	pl.index.mu.RUnlock()

	var total amounts
	for _, c := range candidates {
		total.add(c.capacity)
	}
	dominant := func(a amounts) int64 { return a.milliCPU }
	best := share(fs.request.milliCPU, total.milliCPU)
	if sh := share(fs.request.memory, total.memory); sh > best {
		best, dominant = sh, func(a amounts) int64 { return a.memory }
	}
	if sh := share(fs.request.gpu, total.gpu); sh > best {
		dominant = func(a amounts) int64 { return a.gpu }
	}
	var most int64
	for _, c := range candidates {
		most = max(most, dominant(c.free))
	}
	s := &preScoreState{filter: fs, points: make(map[*pool]int64, len(candidates))}
	for p, c := range candidates {
		var pts int64
		if most > 0 {
			pts = max(dominant(c.free), 0) * (levelPoints - 1) / most
		}
		if p == pl.index.unpooled {
			s.unpooledPoints = pts
		} else {
			s.points[p] = pts
		}
	}
	cs.Write(preScoreStateKey, s)
	return nil
}

func share(request, capacity int64) float64 {
	if request <= 0 || capacity <= 0 {
		return 0
	}
	return float64(request) / float64(capacity)
}

// Score is the node's tier level, then its pool's availability of the dominant resource.
func (pl *TeamPool) Score(_ context.Context, cs fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	d, err := cs.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	s := d.(*preScoreState)
	rank, p := pl.rankNode(s.filter, nodeInfo.Node().Name)
	if rank == rankForbidden {
		return 0, nil
	}
	pts := s.unpooledPoints
	if p != nil {
		pts = s.points[p]
	}
	return (maxLevel-level(rank))*levelPoints + pts, nil
}

// ScoreExtensions returns nil: scores are already in [0, 100).
func (pl *TeamPool) ScoreExtensions() fwk.ScoreExtensions { return nil }

// PostBind counts the placement by tier.
func (pl *TeamPool) PostBind(_ context.Context, cs fwk.CycleState, pod *v1.Pod, nodeName string) {
	s, err := getPreFilterState(cs)
	if err != nil {
		return
	}
	rank, p := pl.rankNode(s, nodeName)
	countPlacement(tierName(rank, p == nil))
}
