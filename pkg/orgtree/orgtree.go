// Package orgtree is the team side of ResourcePools: team paths in an org tree, a pod's team,
// which pool a node belongs to when several select it, and the tier a pool takes for a team.
// The TeamPool plugin and the sandbox's report share it.
package orgtree

import (
	"cmp"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
)

// TeamLabel names a pod's team, on the pod or on its namespace. Label values cannot hold "/",
// so the path ai/applied-ml/recsys is written ai.applied-ml.recsys.
const TeamLabel = "workbench.dev/team"

// Team is a path in the org tree, root first. nil is no team.
type Team []string

func (t Team) String() string { return strings.Join(t, "/") }

// ParseOwner reads a pool's spec.owner, such as "ai/applied-ml/recsys" ("" is a shared pool).
func ParseOwner(path string) (Team, error) { return parse(path, "/") }

// ParseLabel reads a workbench.dev/team label value, such as "ai.applied-ml.recsys".
func ParseLabel(value string) (Team, error) { return parse(value, ".") }

func parse(path, sep string) (Team, error) {
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

// InvalidTeamError is a malformed team label: user input the pod must be refused for.
type InvalidTeamError struct{ msg string }

func (e *InvalidTeamError) Error() string { return e.msg }

const labelSyntax = `DNS labels joined by ".", e.g. ai.applied-ml.recsys`

// TeamOf is a pod's team: its own label, else its namespace's (nsLabels may be nil).
func TeamOf(podLabels map[string]string, namespace string, nsLabels map[string]string) (Team, error) {
	if value, ok := podLabels[TeamLabel]; ok {
		t, err := ParseLabel(value)
		if err != nil {
			return nil, &InvalidTeamError{fmt.Sprintf("pod label %s=%q is not a team path (%s): %v", TeamLabel, value, labelSyntax, err)}
		}
		return t, nil
	}
	value, ok := nsLabels[TeamLabel]
	if !ok {
		return nil, nil
	}
	t, err := ParseLabel(value)
	if err != nil {
		return nil, &InvalidTeamError{fmt.Sprintf("namespace %s label %s=%q is not a team path (%s): %v", namespace, TeamLabel, value, labelSyntax, err)}
	}
	return t, nil
}

// AncestorDistance is how many levels owner sits above t: 0 when equal, -1 when owner is not
// t or an ancestor of it.
func AncestorDistance(t, owner Team) int {
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

// Ranks order tiers, lower is better: 0 is the pod's team, d its ancestor d levels up.
const (
	RankForbidden = -1
	RankShared    = 1000
	RankLent      = 1001
	RankLast      = 1002
)

// Rank places a pool owned by owner for a pod of team t.
func Rank(t, owner Team, lendable bool) int {
	if len(owner) == 0 {
		return RankShared
	}
	if d := AncestorDistance(t, owner); d >= 0 {
		return d
	}
	if lendable {
		return RankLent
	}
	return RankForbidden
}

// TierName labels a rank: own, ancestor, shared, lent, last or forbidden.
func TierName(rank int) string {
	switch {
	case rank == 0:
		return "own"
	case rank > 0 && rank < RankShared:
		return "ancestor"
	case rank == RankShared:
		return "shared"
	case rank == RankLent:
		return "lent"
	case rank == RankLast:
		return "last"
	}
	return "forbidden"
}

// Specificity is how many requirements a pool's selector has; with overlapping pools, a node
// belongs to the most specific.
func Specificity(p *workbenchv1alpha1.ResourcePool) int {
	return len(p.Spec.NodeSelector.MatchLabels) + len(p.Spec.NodeSelector.MatchExpressions)
}

// ComparePrecedence orders pools for nodes they both select: the most specific selector
// first, then by name.
func ComparePrecedence(specificityA int, nameA string, specificityB int, nameB string) int {
	return cmp.Or(cmp.Compare(specificityB, specificityA), cmp.Compare(nameA, nameB))
}

// PoolOf is the pool a node with these labels belongs to: of the pools whose valid selector
// matches, the most specific, then the first by name; nil when none does.
func PoolOf(nodeLabels map[string]string, pools []workbenchv1alpha1.ResourcePool) *workbenchv1alpha1.ResourcePool {
	var best *workbenchv1alpha1.ResourcePool
	for i := range pools {
		p := &pools[i]
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.NodeSelector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(nodeLabels)) {
			continue
		}
		if best == nil || ComparePrecedence(Specificity(p), p.Name, Specificity(best), best.Name) < 0 {
			best = p
		}
	}
	return best
}
