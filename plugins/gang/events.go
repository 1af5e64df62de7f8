package gang

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// EventsToRegister names the events that can let a rejected gang fit.
func (pl *Gang) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// A member arrives (the gang may reach minMember), or a label makes a pod one.
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add | fwk.UpdatePodLabel}, QueueingHintFn: pl.isSchedulableAfterMemberAdded},
		// Capacity frees when a placed pod leaves (terminal pods leave the scheduler's view too).
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		// A node added, resized, relabelled or untainted.
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel | fwk.UpdateNodeTaint}},
		// The PodGroup created or changed (minMember, say).
		{Event: fwk.ClusterEvent{Resource: podGroupEvents, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodGroupChange},
	}, nil
}

func (pl *Gang) isSchedulableAfterMemberAdded(logger klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	added, ok := newObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, nil
	}
	if key := gangKeyOf(pod); key != "" && key == gangKeyOf(added) {
		return fwk.Queue, nil
	}
	logger.V(5).Info("Pod added is no member of the pod's gang", "pod", klog.KObj(pod), "added", klog.KObj(added))
	return fwk.QueueSkip, nil
}

func (pl *Gang) isSchedulableAfterPodDeleted(_ klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	deleted := asPod(oldObj)
	if deleted == nil || deleted.Spec.NodeName != "" || gangKeyOf(deleted) == gangKeyOf(pod) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *Gang) isSchedulableAfterPodGroupChange(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	pg := asPodGroup(newObj)
	if pg == nil || (pg.Namespace == pod.Namespace && pg.Name == pod.Labels[GroupLabel]) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}
