package teampool

import (
	v1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

// TeamLabel names a pod's team, on the pod or on its namespace.
const TeamLabel = orgtree.TeamLabel

// teamResolver finds a pod's team from its label, else its namespace's.
type teamResolver struct {
	namespaces corelisters.NamespaceLister
}

func (r *teamResolver) teamOf(pod *v1.Pod) (orgtree.Team, error) {
	var nsLabels map[string]string
	if _, own := pod.Labels[TeamLabel]; !own && r.namespaces != nil {
		// A namespace not yet in the cache leaves the pod team-less rather than blocked.
		if ns, err := r.namespaces.Get(pod.Namespace); err == nil {
			nsLabels = ns.Labels
		}
	}
	return orgtree.TeamOf(pod.Labels, pod.Namespace, nsLabels)
}
