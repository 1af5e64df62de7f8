// Package v1alpha1 is the workbench.dev/v1alpha1 API: ResourcePool, a team-owned pool of nodes.
//
// +k8s:deepcopy-gen=package
// +kubebuilder:object:generate=true
// +groupName=workbench.dev
package v1alpha1
