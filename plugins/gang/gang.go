package gang

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/validation"
)

// gang is what the plugin keeps about one PodGroup between cycles. Guarded by Gang.mu.
type gang struct {
	key       string
	minMember int
	timeout   time.Duration
	session   bool
	// startedAt is when this gang was first tried (or the PodGroup's scheduleStartTime, so a
	// failover does not restart the clock).
	startedAt time.Time
	// plan is nil until the gang is admitted.
	plan *plan
	// assumed holds members that passed Reserve in this process, by UID, with their node.
	assumed map[types.UID]string
	// lastReason and rejectedEpoch cache the latest rejection: at the same epoch the next
	// member gets the same answer without planning again.
	lastReason    string
	rejectedEpoch uint64
	// timedOut is set once the PodGroup is marked failed for the current attempt.
	timedOut bool
}

// plan is an admitted placement: one slot per member still to place.
type plan struct {
	slots    []*slot
	complete bool
	// allTiers plans were made over every TeamPool tier: members' cycles must not be narrowed.
	allTiers bool
}

// slot is capacity on one node held for one member of a given spec until a member claims it.
type slot struct {
	node      string
	spec      uint64
	req       *framework.Resource
	claimedBy types.UID
}

func (g *gang) deadline() time.Time { return g.startedAt.Add(g.timeout) }

// unclaimed counts the slots no member holds yet.
func (p *plan) unclaimed() int {
	n := 0
	for _, s := range p.slots {
		if s.claimedBy == "" {
			n++
		}
	}
	return n
}

// groupSettings reads what the plugin honours from a PodGroup; a value that slipped past the
// CRD's validation is an error naming the field.
func (pl *Gang) groupSettings(pg *schedv1alpha1.PodGroup, pod *v1.Pod) (minMember int, timeout time.Duration, session bool, err error) {
	if pg.Spec.MinMember < 1 {
		return 0, 0, false, fmt.Errorf("PodGroup %s: spec.minMember %d is invalid: must be at least 1", klog.KObj(pg), pg.Spec.MinMember)
	}
	session = pg.Labels[SessionLabel] == "true" || pod.Labels[SessionLabel] == "true"
	timeout = pl.args.BatchTimeout.Duration
	if session {
		timeout = pl.args.SessionTimeout.Duration
	}
	if t := pg.Spec.ScheduleTimeoutSeconds; t != nil {
		if *t < 1 {
			return 0, 0, false, fmt.Errorf("PodGroup %s: spec.scheduleTimeoutSeconds %d is invalid: must be at least 1", klog.KObj(pg), *t)
		}
		timeout = time.Duration(*t) * time.Second
	}
	return int(pg.Spec.MinMember), timeout, session, nil
}

// gangLocked returns the gang's record, creating or refreshing it from its PodGroup.
func (pl *Gang) gangLocked(key string, pg *schedv1alpha1.PodGroup, minMember int, timeout time.Duration, session bool) *gang {
	g := pl.gangs[key]
	if g == nil {
		g = &gang{key: key, assumed: map[types.UID]string{}, startedAt: pl.clock.Now()}
		if st := pg.Status.ScheduleStartTime; !st.IsZero() && st.Time.Before(g.startedAt) {
			g.startedAt = st.Time
		}
		pl.gangs[key] = g
	}
	g.minMember, g.timeout, g.session = minMember, timeout, session
	return g
}

// placedLocked counts the gang's members that are bound, or assumed here and not yet bound.
func (pl *Gang) placedLocked(g *gang) (bound, placed int) {
	for uid, pod := range pl.members[g.key] {
		switch {
		case pod.Spec.NodeName != "":
			bound++
			placed++
		case g.assumed[uid] != "":
			placed++
		}
	}
	// A member assumed before the informer has seen it (tests with a fake clientset).
	for uid := range g.assumed {
		if _, known := pl.members[g.key][uid]; !known {
			placed++
		}
	}
	return bound, placed
}

// abortLocked drops the gang's plan and reservation, rejects its waiting members and
// re-activates the rest, so the gang is planned again as a whole.
func (pl *Gang) abortLocked(logger klog.Logger, g *gang, reason string) {
	if g.plan == nil {
		return
	}
	pl.releaseLocked(g.plan.unclaimed())
	g.plan = nil
	msg := fmt.Sprintf("gang %s was not completed: %s; its members are placed again together", g.key, reason)
	timedOut := !pl.clock.Now().Before(g.deadline())
	if timedOut {
		msg = fmt.Sprintf("gang %s timed out after %s: %s", g.key, g.timeout, reason)
	}
	pl.rejectWaitingLocked(g, msg)
	g.assumed = map[types.UID]string{}
	g.lastReason = ""
	logger.V(2).Info("Gang aborted", "gang", g.key, "reason", reason)
	if timedOut {
		countOutcome(outcomeTimedOut, "timeout")
		pl.markTimedOutLocked(g, msg)
	} else {
		countOutcome(outcomeAborted, "member_failed")
	}
	pl.activateLocked(g)
}

func (pl *Gang) rejectWaitingLocked(g *gang, msg string) {
	for uid := range g.assumed {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			wp.Reject(Name, msg)
		}
	}
}

// activateLocked moves the gang's unbound members back to the active queue.
func (pl *Gang) activateLocked(g *gang) {
	pods := map[string]*v1.Pod{}
	for _, pod := range pl.members[g.key] {
		if pod.Spec.NodeName == "" {
			pods[pod.Namespace+"/"+pod.Name] = pod
		}
	}
	if len(pods) > 0 {
		// Outside our lock: the queue calls back into Less.
		go pl.handle.Activate(klog.Background(), pods)
	}
}

// markTimedOutLocked records the timeout on the PodGroup once per attempt.
func (pl *Gang) markTimedOutLocked(g *gang, msg string) {
	if g.timedOut {
		return
	}
	g.timedOut = true
	pl.status.set(g.key, schedv1alpha1.PodGroupFailed, msg, g.startedAt)
	pl.recordGroupEvent(g.key, v1.EventTypeWarning, EventReasonTimedOut, msg)
}

// permitWait is how long a member may wait in Permit: until the gang's deadline, and below
// the framework's own ceiling.
func (g *gang) permitWait(now time.Time) time.Duration {
	return min(g.deadline().Sub(now), validation.MaxGangTimeout)
}

// releaseLocked gives back n reserved slots: gangs and pods turned away by them may fit now.
func (pl *Gang) releaseLocked(n int) {
	if n == 0 {
		return
	}
	pl.reservedSlots.Add(-int64(n))
	pl.epoch.Add(1)
	if len(pl.turnedAway) > 0 {
		pods := pl.turnedAway
		pl.turnedAway = nil
		go pl.handle.Activate(klog.Background(), pods)
	}
}

// maxTurnedAway bounds the pods remembered for re-activation; beyond it they wait for a
// cluster event or the queue's periodic flush.
const maxTurnedAway = 10_000

func (pl *Gang) rememberTurnedAwayLocked(pod *v1.Pod) {
	if pl.turnedAway == nil {
		pl.turnedAway = map[string]*v1.Pod{}
	}
	if len(pl.turnedAway) < maxTurnedAway {
		pl.turnedAway[pod.Namespace+"/"+pod.Name] = pod
	}
}
