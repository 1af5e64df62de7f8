package gang

import (
	"time"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// queueKey is what Less compares, after priority.
type queueKey struct {
	// batch is false for interactive sessions, which go first.
	batch bool
	// created is the PodGroup's creation time for members, the pod's own otherwise.
	created time.Time
	// group keeps members of one gang adjacent: "namespace/name", or "" for a pod in none.
	group string
}

// Less orders by priority, then sessions before batch, then the gang's (or pod's) creation
// time, then by gang, so a gang's members come up one after another and are tried as a unit.
// Entities that are not single pods (the in-tree pod-group scheduling cycle) compare as
// upstream's PrioritySort does.
func (pl *Gang) Less(a, b fwk.QueuedEntityInfo) bool {
	if pa, pb := a.GetPriority(), b.GetPriority(); pa != pb {
		return pa > pb
	}
	podA, podB := podOf(a), podOf(b)
	if podA == nil || podB == nil {
		return a.GetTimestamp().Before(b.GetTimestamp())
	}
	ka, kb := pl.queueKeyOf(podA), pl.queueKeyOf(podB)
	if ka.batch != kb.batch {
		return !ka.batch
	}
	if !ka.created.Equal(kb.created) {
		return ka.created.Before(kb.created)
	}
	if ka.group != kb.group {
		return ka.group < kb.group
	}
	if ta, tb := a.GetTimestamp(), b.GetTimestamp(); !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return podA.Name < podB.Name
}

func podOf(e fwk.QueuedEntityInfo) *v1.Pod {
	if e.Type() != fwk.PodKeyType {
		return nil
	}
	qp, ok := e.(interface{ GetPodInfo() fwk.PodInfo })
	if !ok || qp.GetPodInfo() == nil {
		return nil
	}
	return qp.GetPodInfo().GetPod()
}

func (pl *Gang) queueKeyOf(pod *v1.Pod) queueKey {
	k := queueKey{batch: pod.Labels[SessionLabel] != "true", created: pod.CreationTimestamp.Time}
	key := gangKeyOf(pod)
	if key == "" {
		return k
	}
	k.group = key
	if pl.pgLister == nil {
		return k
	}
	pg, err := pl.pgLister.PodGroups(pod.Namespace).Get(pod.Labels[GroupLabel])
	if err != nil {
		return k
	}
	k.created = pg.CreationTimestamp.Time
	if pg.Labels[SessionLabel] == "true" {
		k.batch = false
	}
	return k
}
