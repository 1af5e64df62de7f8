package teampool

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// TeamLabel names a pod's team, on the pod or on its namespace. Label values cannot hold "/",
// so the path ai/applied-ml/recsys is written ai.applied-ml.recsys.
const TeamLabel = "workbench.dev/team"

// team is a path in the org tree, root first. nil is no team.
type team []string

func (t team) String() string { return strings.Join(t, "/") }

// parseTeamPath reads an owner such as "ai/applied-ml/recsys" ("" is no team).
func parseTeamPath(path string, sep string) (team, error) {
	if path == "" {
		return nil, nil
	}
	segments := strings.Split(path, sep)
	for _, s := range segments {
		if msgs := validation.IsDNS1123Label(s); len(msgs) != 0 {
			return nil, fmt.Errorf("segment %q: %s", s, strings.Join(msgs, "; "))
		}
	}
	return segments, nil
}

// ancestorDistance is how many levels owner sits above t: 0 when equal, -1 when owner is not
// t or an ancestor of it.
func ancestorDistance(t, owner team) int {
	if len(owner) == 0 || len(owner) > len(t) {
		return -1
	}
	for i := range owner {
		if owner[i] != t[i] {
			return -1
		}
	}
	return len(t) - len(owner)
}

// teamResolver finds a pod's team from its label, else its namespace's.
type teamResolver struct {
	namespaces corelisters.NamespaceLister
}

// invalidTeamError is user input the pod must be refused for.
type invalidTeamError struct{ msg string }

func (e *invalidTeamError) Error() string { return e.msg }

func (r *teamResolver) teamOf(pod *v1.Pod) (team, error) {
	if value, ok := pod.Labels[TeamLabel]; ok {
		t, err := parseTeamPath(value, ".")
		if err != nil {
			return nil, &invalidTeamError{fmt.Sprintf("pod label %s=%q is not a team path (DNS labels joined by \".\", e.g. ai.applied-ml.recsys): %v", TeamLabel, value, err)}
		}
		return t, nil
	}
	if r.namespaces == nil {
		return nil, nil
	}
	ns, err := r.namespaces.Get(pod.Namespace)
	if err != nil {
		// A namespace not yet in the cache: treat the pod as team-less rather than block it.
		return nil, nil
	}
	value, ok := ns.Labels[TeamLabel]
	if !ok {
		return nil, nil
	}
	t, err := parseTeamPath(value, ".")
	if err != nil {
		return nil, &invalidTeamError{fmt.Sprintf("namespace %s label %s=%q is not a team path (DNS labels joined by \".\", e.g. ai.applied-ml.recsys): %v", pod.Namespace, TeamLabel, value, err)}
	}
	return t, nil
}
