// Package narrowing records, in a scheduling cycle's state, the node sets that PreFilter
// plugins narrowed the cycle to. The framework intersects the plugins' PreFilterResults, and
// an empty intersection makes the pod unschedulable without a look at any node: a plugin that
// narrows by preference (GPUAffinity's best-packed nodes) and runs later in the PreFilter chain
// reads these sets to choose within them, or not to narrow at all.
//
// A plugin that narrows by requirement (TeamPool's tier, Gang's planned nodes) records its
// set with Record when it returns it. The sets are shared, never copied: nobody may change a
// set after recording it.
package narrowing

import (
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
)

const key fwk.StateKey = "workbench.dev/narrowed-to"

// Sets are the node sets recorded in one cycle; a node is in the cycle's narrowing when every
// set holds it.
type Sets struct {
	sets []sets.Set[string]
}

// Clone returns the sets themselves: they do not change once recorded.
func (s *Sets) Clone() fwk.StateData { return s }

// Record adds nodes to the cycle's narrowing. A nil set (all nodes) records nothing.
func Record(state fwk.CycleState, nodes sets.Set[string]) {
	if nodes == nil {
		return
	}
	next := &Sets{}
	if prev := Read(state); prev != nil {
		next.sets = append(next.sets, prev.sets...)
	}
	next.sets = append(next.sets, nodes)
	state.Write(key, next)
}

// Read returns the sets recorded so far in the cycle, or nil when no plugin narrowed it.
func Read(state fwk.CycleState) *Sets {
	data, err := state.Read(key)
	if err != nil {
		return nil
	}
	s, _ := data.(*Sets)
	return s
}

// Has reports whether every recorded set holds the node.
func (s *Sets) Has(node string) bool {
	for _, set := range s.sets {
		if !set.Has(node) {
			return false
		}
	}
	return true
}

// MaxLen bounds the number of nodes in the narrowing: the size of the smallest set.
func (s *Sets) MaxLen() int {
	n := -1
	for _, set := range s.sets {
		if n < 0 || set.Len() < n {
			n = set.Len()
		}
	}
	return max(n, 0)
}
