package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rpool
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`,description="Owning team; empty for a shared pool"
// +kubebuilder:printcolumn:name="Lendable",type=boolean,JSONPath=`.spec.lendable`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Free CPU",type=string,JSONPath=`.status.free.cpu`
// +kubebuilder:printcolumn:name="Free GPU",type=string,JSONPath=`.status.free.gpu`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ResourcePool is a set of nodes, chosen by a label selector, owned by a team. The TeamPool
// scheduler plugin sends a pod to its own team's pools first, then to its ancestors' pools,
// then to shared pools, then to other teams' lendable pools.
type ResourcePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ResourcePoolSpec   `json:"spec"`
	Status ResourcePoolStatus `json:"status,omitempty"`
}

// ResourcePoolSpec says which nodes are in the pool and who owns it.
type ResourcePoolSpec struct {
	// NodeSelector chooses the pool's nodes. A node matching several pools belongs to the one
	// with the most specific selector (most requirements), then the first by name.
	// It needs at least one requirement. As for any label selector, an operator is In, NotIn,
	// Exists or DoesNotExist; In and NotIn need values, Exists and DoesNotExist take none.
	// +kubebuilder:validation:XValidation:rule="has(self.matchLabels) && size(self.matchLabels) > 0 || has(self.matchExpressions) && size(self.matchExpressions) > 0",message="nodeSelector must have at least one requirement: an empty selector would take every node"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(r, r.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="nodeSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(r, !(r.operator in ['In', 'NotIn']) || has(r.values) && size(r.values) > 0)",message="nodeSelector.matchExpressions: In and NotIn need at least one value"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(r, !(r.operator in ['Exists', 'DoesNotExist']) || !has(r.values) || size(r.values) == 0)",message="nodeSelector.matchExpressions: Exists and DoesNotExist take no values"
	NodeSelector metav1.LabelSelector `json:"nodeSelector"`

	// Owner is the owning team's path in the org tree, segments separated by "/", for example
	// "ai/applied-ml/recsys". Each segment is a DNS label. Empty means a shared pool.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*)?$`
	Owner string `json:"owner,omitempty"`

	// Lendable lets pods of other teams use the pool when their own tiers have no room.
	// +optional
	// +kubebuilder:default=false
	Lendable bool `json:"lendable,omitempty"`
}

// PoolResources are the amounts the status reports, per resource.
type PoolResources struct {
	CPU    resource.Quantity `json:"cpu"`
	Memory resource.Quantity `json:"memory"`
	GPU    resource.Quantity `json:"gpu"`
}

// ResourcePoolStatus is written by the leading scheduler, at most every 10 s per pool.
type ResourcePoolStatus struct {
	// Nodes is how many nodes belong to the pool.
	Nodes int32 `json:"nodes"`
	// Capacity is the sum of the pool's nodes' allocatable.
	// +optional
	Capacity PoolResources `json:"capacity,omitempty"`
	// Allocated is the sum of the requests of pods bound to the pool's nodes.
	// +optional
	Allocated PoolResources `json:"allocated,omitempty"`
	// Free is capacity minus allocated.
	// +optional
	Free PoolResources `json:"free,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, and Overlapping when nodes also match another pool.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of a ResourcePool.
const (
	// ConditionReady is True when the pool's selector is valid and it is in use.
	ConditionReady = "Ready"
	// ConditionOverlapping is True when some node this pool selects also matches another pool.
	ConditionOverlapping = "Overlapping"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// ResourcePoolList is a list of ResourcePools.
type ResourcePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResourcePool `json:"items"`
}
