package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// ErrReasonNoPreemption is PostFilter's answer for gang members: preempting pods for one
// member cannot place a gang, so members do not preempt.
const ErrReasonNoPreemption = "gang members do not preempt"

// PostFilter runs when a member fit none of the nodes left to it. If the gang was admitted,
// its plan is stale (a planned node changed): the plan is dropped and the gang planned again
// over all nodes. It ends the PostFilter chain for members so that nothing is preempted for
// a single member.
func (pl *Gang) PostFilter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	key := gangKeyOf(pod)
	if key == "" {
		if pl.reservedSlots.Load() > 0 {
			pl.mu.Lock()
			pl.rememberTurnedAwayLocked(pod)
			pl.mu.Unlock()
		}
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	pl.mu.Lock()
	if g := pl.gangs[key]; g != nil && g.plan != nil && !g.plan.complete {
		pl.abortLocked(klog.FromContext(ctx), g, fmt.Sprintf("member %s fit none of its planned nodes", klog.KObj(pod)))
	}
	pl.mu.Unlock()
	return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonNoPreemption)
}

// Reserve claims the member's slot in its gang's plan: the capacity is now the pod's own.
func (pl *Gang) Reserve(_ context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	key := gangKeyOf(pod)
	if key == "" {
		return nil
	}
	spec := specKey(pod)
	if data, err := state.Read(preFilterStateKey); err == nil {
		spec = data.(*preFilterState).spec
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	g := pl.gangs[key]
	if g == nil {
		return nil
	}
	g.assumed[pod.UID] = nodeName
	if g.plan == nil || g.plan.complete {
		return nil
	}
	var claim *slot
	for _, s := range g.plan.slots {
		if s.claimedBy == "" && s.spec == spec && (claim == nil || s.node == nodeName) {
			claim = s
			if s.node == nodeName {
				break
			}
		}
	}
	if claim != nil {
		claim.claimedBy = pod.UID
		if claim.node == nodeName {
			// The pod's own request now holds the capacity.
			pl.reservedSlots.Add(-1)
		} else {
			pl.releaseLocked(1)
		}
	}
	return nil
}

// Unreserve runs when a member is rejected or fails to bind. Before the gang is complete,
// the whole gang goes back: waiting members are rejected and the reservation released.
func (pl *Gang) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	key := gangKeyOf(pod)
	if key == "" {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	g := pl.gangs[key]
	if g == nil {
		return
	}
	if g.plan != nil && !g.plan.complete {
		pl.abortLocked(klog.FromContext(ctx), g, fmt.Sprintf("member %s was not placed", klog.KObj(pod)))
	}
	delete(g.assumed, pod.UID)
}

// Permit holds members until minMember of the gang are bound or assumed, then lets them all go.
func (pl *Gang) Permit(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	key := gangKeyOf(pod)
	if key == "" {
		return nil, 0
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	g := pl.gangs[key]
	if g == nil || g.plan == nil {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("gang %s was reset while %s was placed; its members are placed again together", key, pod.Name)), 0
	}
	if g.plan.complete {
		return nil, 0
	}
	_, placed := pl.placedLocked(g)
	if placed >= g.minMember {
		g.plan.complete = true
		pl.releaseLocked(g.plan.unclaimed())
		g.plan.slots = nil
		for uid := range g.assumed {
			if wp := pl.handle.GetWaitingPod(uid); wp != nil {
				wp.Allow(Name)
			}
		}
		msg := fmt.Sprintf("all %d members placed", placed)
		countOutcome(outcomeCompleted, "completed")
		pl.status.set(key, schedv1alpha1.PodGroupScheduling, msg, g.startedAt)
		klog.FromContext(ctx).V(2).Info("Gang complete", "gang", key, "members", placed)
		return nil, 0
	}
	wait := g.permitWait(pl.clock.Now())
	if wait <= 0 {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("gang %s timed out after %s with %d of %d members placed", key, g.timeout, placed, g.minMember)), 0
	}
	return fwk.NewStatus(fwk.Wait, fmt.Sprintf("waiting for %d more members of gang %s", g.minMember-placed, key)), wait
}
