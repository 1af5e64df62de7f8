package gpuaffinity

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

const preScoreStateKey fwk.StateKey = "PreScore" + Name

type preScoreState struct{ gpus int64 }

// Clone shares the state: it is read-only.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore skips scoring for pods without GPUs: upstream's resource scoring spreads them.
func (pl *GPUAffinity) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	gpus := countGPUs(pod, pl.gpuResources)
	if gpus == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{gpus: gpus})
	return nil
}

// Score is the number of GPUs the node would have free after placing the pod; NormalizeScore
// turns fewer into better (BinPack) or more into better (Spread).
func (pl *GPUAffinity) Score(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	data, err := state.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	s := data.(*preScoreState)
	allocatable, requested := pl.gpuCounts(nodeInfo)
	return max(allocatable-requested-s.gpus, 0), nil
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
