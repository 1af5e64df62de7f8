package gpuaffinity

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

const preScoreStateKey fwk.StateKey = "PreScore" + Name

type preScoreState struct{ units []unitRequest }

// Clone shares the state: it is read-only.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore skips scoring for pods without GPUs: upstream's resource scoring spreads them.
func (pl *GPUAffinity) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	units := podUnits(pod, pl.classes, pl.memoryLabel)
	if len(units) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{units: units})
	return nil
}

// Score is the number of units the node would have free after placing the pod, counted in the
// units the pod requests only: a MIG pod packs by free slices of its profile, a whole-GPU pod
// by free whole GPUs, and slices are never added to GPUs. NormalizeScore turns fewer into
// better (BinPack) or more into better (Spread).
func (pl *GPUAffinity) Score(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	data, err := state.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	s := data.(*preScoreState)
	alloc := nodeInfo.GetAllocatable().GetScalarResources()
	used := nodeInfo.GetRequested().GetScalarResources()
	var free int64
	for _, u := range s.units {
		free += max(alloc[u.name]-used[u.name]-u.n, 0)
	}
	return free, nil
}

// ScoreExtensions returns the normalizer.
func (pl *GPUAffinity) ScoreExtensions() fwk.ScoreExtensions { return pl }

// NormalizeScore maps free-GPUs-after-placement linearly onto [0, MaxNodeScore].
func (pl *GPUAffinity) NormalizeScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, scores fwk.NodeScoreList) *fwk.Status {
	if len(scores) == 0 {
		return nil
	}
	lo, hi := scores[0].Score, scores[0].Score
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		if hi == lo {
			scores[i].Score = fwk.MaxNodeScore
			continue
		}
		free := scores[i].Score
		if pl.binPack {
			scores[i].Score = (hi - free) * fwk.MaxNodeScore / (hi - lo)
		} else {
			scores[i].Score = (free - lo) * fwk.MaxNodeScore / (hi - lo)
		}
	}
	return nil
}
