// Package tierhint carries one fact between two plugins through the cycle state: Gang planned
// a member outside the member's best TeamPool tier, so TeamPool must not narrow that member's
// cycle to the tier (the framework intersects the plugins' node sets, and the planned node
// would be cut). TeamPool's Filter still refuses pools the pod may not use.
package tierhint

import fwk "k8s.io/kube-scheduler/framework"

const key fwk.StateKey = "workbench.dev/all-tiers"

type allTiers struct{}

func (allTiers) Clone() fwk.StateData { return allTiers{} }

// SetAllTiers marks the cycle: every tier the pod may use stays open.
func SetAllTiers(state fwk.CycleState) { state.Write(key, allTiers{}) }

// AllTiers reports whether the cycle was marked by SetAllTiers.
func AllTiers(state fwk.CycleState) bool {
	_, err := state.Read(key)
	return err == nil
}
