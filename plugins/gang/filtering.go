package gang

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/narrowing"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/tierhint"
)

// ErrReasonReserved is Filter's reason when a node's free capacity is held for a gang.
const ErrReasonReserved = "node(s) had capacity reserved for a gang being placed"

// preFilterState is what Filter and Reserve read. It is never changed after PreFilter.
type preFilterState struct {
	gang string
	spec uint64
	req  *framework.Resource
	// reserved is capacity held for other pods' gangs, by node: the pod must leave it free.
	reserved map[string]*framework.Resource
}

func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilterExtensions returns nil: reservations do not depend on the pods a preemption
// simulation adds or removes.
func (pl *Gang) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// PreFilter admits a gang as a whole when its first member comes up, steers admitted members
// to their planned nodes, and hands every pod the reservations it must respect.
func (pl *Gang) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if data, err := state.Read(planningKey); err == nil {
		ps := data.(*planningState)
		return nil, pl.writeState(state, &preFilterState{gang: ps.gang, req: podRequest(pod), reserved: ps.reserved})
	}
	key := gangKeyOf(pod)
	if key == "" {
		if pl.reservedSlots.Load() == 0 {
			return nil, fwk.NewStatus(fwk.Skip)
		}
		pl.mu.Lock()
		reserved := pl.reservationsLocked("", 0)
		pl.mu.Unlock()
		return nil, pl.writeState(state, &preFilterState{req: podRequest(pod), reserved: reserved})
	}
	return pl.admit(ctx, state, pod, key)
}

func (pl *Gang) writeState(state fwk.CycleState, s *preFilterState) *fwk.Status {
	if len(s.reserved) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	state.Write(preFilterStateKey, s)
	return nil
}

func (pl *Gang) admit(ctx context.Context, state fwk.CycleState, pod *v1.Pod, key string) (*fwk.PreFilterResult, *fwk.Status) {
	logger := klog.FromContext(ctx)
	if !pl.synced() {
		return nil, fwk.AsStatus(errors.New("PodGroups, pods and nodes are still loading"))
	}
	groupName := pod.Labels[GroupLabel]
	pg, err := pl.pgLister.PodGroups(pod.Namespace).Get(groupName)
	if apierrors.IsNotFound(err) {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("PodGroup %q (label %s) not found in namespace %s", groupName, GroupLabel, pod.Namespace))
	}
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	minMember, timeout, session, err := pl.groupSettings(pg, pod)
	if err != nil {
		pl.recordGroupEventOnce(pg, EventReasonInvalid, err.Error())
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	spec := specKey(pod)

	pl.mu.Lock()
	g := pl.gangLocked(key, pg, minMember, timeout, session)
	if g.plan != nil && g.plan.complete {
		if _, placed := pl.placedLocked(g); placed < g.minMember {
			// Members left a complete gang (a restarted job, say): the rest is placed as a gang again.
			g.plan = nil
		}
	}
	if g.plan != nil {
		return pl.steerLocked(state, pod, g, spec)
	}
	bound, placed := pl.placedLocked(g)
	if placed >= g.minMember {
		// minMember already run (bound before a restart, say): the rest place freely.
		g.plan = &plan{complete: true}
		return pl.steerLocked(state, pod, g, spec)
	}
	epoch := pl.epoch.Load()
	if g.lastReason != "" && g.rejectedEpoch == epoch {
		reason := g.lastReason
		pl.mu.Unlock()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	pending := pl.pendingMembersLocked(g, pod)
	need := g.minMember - placed
	if len(pending) < need {
		reason := fmt.Sprintf("gang %s waits for members: %d of minMember %d exist and can be scheduled (%d bound)", key, len(pending)+placed, g.minMember, bound)
		pl.rejectLocked(g, pg, epoch, reason, "waiting_for_members")
		pl.mu.Unlock()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	reserved := pl.reservationsLocked(key, 0)
	pl.mu.Unlock()

	if reason := pl.checkMinResources(pg); reason != "" {
		pl.mu.Lock()
		pl.rejectLocked(g, pg, epoch, fmt.Sprintf("gang %s: %s", key, reason), "min_resources")
		pl.mu.Unlock()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("gang %s: %s", key, reason))
	}
	start := pl.clock.Now()
	p, reason, narrowed, err := pl.plan(ctx, key, pending[:need], reserved, planOptions{})
	if err == nil && reason != "" && narrowed {
		// A PreFilter (TeamPool's best tier) narrowed some member and the gang does not fit
		// there: try every tier the members may use.
		if wide, _, _, werr := pl.plan(ctx, key, pending[:need], reserved, planOptions{allTiers: true}); werr == nil && wide != nil {
			p, reason = wide, ""
		}
	}
	observeDecision(pl.clock.Since(start), reason == "" && err == nil)
	if err != nil {
		return nil, fwk.AsStatus(fmt.Errorf("planning gang %s: %w", key, err))
	}

	pl.mu.Lock()
	if pl.gangs[key] != g || g.plan != nil {
		// The PodGroup was deleted, or the gang changed, while we planned: try again.
		pl.mu.Unlock()
		return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("gang %s changed while it was planned", key))
	}
	if reason != "" {
		pl.rejectLocked(g, pg, epoch, reason, "does_not_fit")
		pl.mu.Unlock()
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, reason)
	}
	g.plan = p
	g.lastReason = ""
	if g.timedOut || !pl.clock.Now().Before(g.deadline()) {
		// A new attempt after a timeout gets a full timeout of its own.
		g.startedAt, g.timedOut = pl.clock.Now(), false
	}
	pl.reservedSlots.Add(int64(len(p.slots)))
	nodes := sets.New[string]()
	for _, s := range p.slots {
		nodes.Insert(s.node)
	}
	msg := fmt.Sprintf("admitted: %d members planned on %d nodes", len(p.slots), nodes.Len())
	countOutcome(outcomeAdmitted, "admitted")
	pl.status.set(key, schedv1alpha1.PodGroupScheduling, msg, g.startedAt)
	pl.recordGroupEvent(key, v1.EventTypeNormal, EventReasonAdmitted, msg)
	logger.V(2).Info("Gang admitted", "gang", key, "members", len(p.slots), "nodes", sets.List(nodes))
	// Members turned away earlier (waiting for the rest, say) sit in the unschedulable pool,
	// and no event may come to move them: bring the gang's other members back now.
	if len(pending) > 1 {
		others := make(map[string]*v1.Pod, len(pending)-1)
		for _, m := range pending[1:] {
			others[m.Namespace+"/"+m.Name] = m
		}
		go pl.handle.Activate(klog.Background(), others)
	}
	return pl.steerLocked(state, pod, g, spec)
}

// steerLocked returns the member's planned nodes and writes its cycle state; it unlocks mu.
func (pl *Gang) steerLocked(state fwk.CycleState, pod *v1.Pod, g *gang, spec uint64) (*fwk.PreFilterResult, *fwk.Status) {
	nodes := sets.New[string]()
	if !g.plan.complete {
		for _, s := range g.plan.slots {
			if s.claimedBy == "" && s.spec == spec {
				nodes.Insert(s.node)
			}
		}
	}
	reserved := pl.reservationsLocked(g.key, spec)
	allTiers := g.plan.allTiers
	pl.mu.Unlock()
	if allTiers {
		tierhint.SetAllTiers(state)
	}
	state.Write(preFilterStateKey, &preFilterState{gang: g.key, spec: spec, req: podRequest(pod), reserved: reserved})
	if nodes.Len() > 0 {
		// Later PreFilters that narrow by preference (GPUAffinity) must keep the planned nodes.
		narrowing.Record(state, nodes)
		return &fwk.PreFilterResult{NodeNames: nodes}, nil
	}
	return nil, nil
}

// rejectLocked remembers and publishes why the gang cannot be admitted now.
func (pl *Gang) rejectLocked(g *gang, pg *schedv1alpha1.PodGroup, epoch uint64, reason, metricReason string) {
	changed := g.lastReason != reason
	g.lastReason, g.rejectedEpoch = reason, epoch
	countOutcome(outcomeRejected, metricReason)
	phase := schedv1alpha1.PodGroupPending
	if g.timedOut {
		phase = schedv1alpha1.PodGroupFailed
	}
	pl.status.set(g.key, phase, reason, g.startedAt)
	// Members still being created are the normal start of every gang, not worth a warning.
	if changed && metricReason != "waiting_for_members" {
		pl.recordGroupEvent(g.key, v1.EventTypeWarning, EventReasonNotAdmitted, reason)
	}
}

// pendingMembersLocked lists the gang's members this profile can place now, the pod in the
// cycle first, then oldest first.
func (pl *Gang) pendingMembersLocked(g *gang, current *v1.Pod) []*v1.Pod {
	pods := []*v1.Pod{current}
	for uid, m := range pl.members[g.key] {
		if uid == current.UID || m.Spec.NodeName != "" || m.DeletionTimestamp != nil || g.assumed[uid] != "" ||
			m.Spec.SchedulerName != current.Spec.SchedulerName || len(m.Spec.SchedulingGates) > 0 {
			continue
		}
		pods = append(pods, m)
	}
	slices.SortFunc(pods[1:], func(a, b *v1.Pod) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return pods
}

// reservationsLocked sums the unclaimed slots by node that a pod of gang key and spec must
// leave free: every other gang's, and its own gang's except one slot of its spec per node.
func (pl *Gang) reservationsLocked(key string, spec uint64) map[string]*framework.Resource {
	if pl.reservedSlots.Load() == 0 {
		return nil
	}
	out := map[string]*framework.Resource{}
	excused := sets.New[string]()
	for _, g := range pl.gangs {
		if g.plan == nil || g.plan.complete {
			continue
		}
		for _, s := range g.plan.slots {
			if s.claimedBy != "" {
				continue
			}
			if g.key == key && s.spec == spec && !excused.Has(s.node) {
				excused.Insert(s.node)
				continue
			}
			r := out[s.node]
			if r == nil {
				r = &framework.Resource{}
				out[s.node] = r
			}
			addResource(r, s.req)
			r.AllowedPodNumber++
		}
	}
	return out
}

func addResource(dst, src *framework.Resource) {
	dst.MilliCPU += src.MilliCPU
	dst.Memory += src.Memory
	dst.EphemeralStorage += src.EphemeralStorage
	for name, v := range src.ScalarResources {
		dst.AddScalar(name, v)
	}
}

// checkMinResources compares the PodGroup's minResources with what the cluster has free, a
// quick answer before planning; the plan itself is checked node by node.
func (pl *Gang) checkMinResources(pg *schedv1alpha1.PodGroup) string {
	if len(pg.Spec.MinResources) == 0 {
		return ""
	}
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return ""
	}
	freeTotal := &framework.Resource{}
	for _, ni := range nodes {
		alloc, used := ni.GetAllocatable(), ni.GetRequested()
		freeTotal.MilliCPU += alloc.GetMilliCPU() - used.GetMilliCPU()
		freeTotal.Memory += alloc.GetMemory() - used.GetMemory()
		freeTotal.EphemeralStorage += alloc.GetEphemeralStorage() - used.GetEphemeralStorage()
		for name, v := range alloc.GetScalarResources() {
			freeTotal.AddScalar(name, v-used.GetScalarResources()[name])
		}
	}
	want := framework.NewResource(pg.Spec.MinResources)
	var short []string
	check := func(name string, want, have int64) {
		if want > have {
			short = append(short, fmt.Sprintf("%s %d (free in the cluster: %d)", name, want, have))
		}
	}
	check("cpu millicores", want.MilliCPU, freeTotal.MilliCPU)
	check("memory bytes", want.Memory, freeTotal.Memory)
	check("ephemeral-storage bytes", want.EphemeralStorage, freeTotal.EphemeralStorage)
	for name, v := range want.ScalarResources {
		check(string(name), v, freeTotal.ScalarResources[name])
	}
	if len(short) == 0 {
		return ""
	}
	slices.Sort(short)
	return "spec.minResources needs " + strings.Join(short, ", ")
}

// Filter keeps a pod off capacity held for a gang's members that are not placed yet.
func (pl *Gang) Filter(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	data, err := state.Read(preFilterStateKey)
	if err != nil {
		return nil
	}
	s := data.(*preFilterState)
	held := s.reserved[nodeInfo.Node().Name]
	if held == nil {
		return nil
	}
	alloc, used := nodeInfo.GetAllocatable(), nodeInfo.GetRequested()
	over := len(nodeInfo.GetPods())+held.AllowedPodNumber+1 > alloc.GetAllowedPodNumber() ||
		(s.req.MilliCPU > 0 && used.GetMilliCPU()+held.MilliCPU+s.req.MilliCPU > alloc.GetMilliCPU()) ||
		(s.req.Memory > 0 && used.GetMemory()+held.Memory+s.req.Memory > alloc.GetMemory()) ||
		(s.req.EphemeralStorage > 0 && used.GetEphemeralStorage()+held.EphemeralStorage+s.req.EphemeralStorage > alloc.GetEphemeralStorage())
	for name, v := range s.req.ScalarResources {
		if v > 0 && used.GetScalarResources()[name]+held.ScalarResources[name]+v > alloc.GetScalarResources()[name] {
			over = true
		}
	}
	if over {
		return fwk.NewStatus(fwk.Unschedulable, ErrReasonReserved)
	}
	return nil
}
