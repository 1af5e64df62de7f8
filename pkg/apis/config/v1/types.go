package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// GPUAffinityArgs configures the GPUAffinity plugin.
type GPUAffinityArgs struct {
	metav1.TypeMeta `json:",inline"`

	// GPUResourceNames are the GPU resource classes: extended resource names, or a prefix of
	// one followed by "*", whose request makes a pod a GPU pod and whose capacity or allocatable
	// makes a node a GPU node. Each resource name is packed in its own unit: MIG slices and
	// shared GPUs are never added to whole GPUs. A resource matched by a pattern is a slice: its
	// memory per unit is the node label "<resource>.memory" (GPU Feature Discovery's).
	// Default: [nvidia.com/gpu, nvidia.com/mig-*, nvidia.com/gpu.shared, amd.com/gpu,
	// gpu.intel.com/i915].
	GPUResourceNames []string `json:"gpuResourceNames,omitempty"`
	// ProductLabel is the node label naming the GPU model. Default: nvidia.com/gpu.product.
	ProductLabel string `json:"productLabel,omitempty"`
	// CountLabel is a node label whose presence marks a GPU node, so that a node stays one
	// while its device plugin reports no GPUs. Default: nvidia.com/gpu.count.
	CountLabel string `json:"countLabel,omitempty"`
	// GPUNodeLabels are more node label keys whose presence marks a GPU node (any value).
	GPUNodeLabels []string `json:"gpuNodeLabels,omitempty"`
	// MemoryLabel is the node label giving per-GPU memory in MiB. Default: nvidia.com/gpu.memory.
	MemoryLabel string `json:"memoryLabel,omitempty"`
	// SKUs name GPU models; a special SKU only takes pods that name it.
	SKUs []GPUSKU `json:"skus,omitempty"`
	// CPUPodsOnGPUNodes is Deny (default) or Allow.
	CPUPodsOnGPUNodes string `json:"cpuPodsOnGPUNodes,omitempty"`
	// GPUNodeTaintKey: a pod that tolerates a NoSchedule taint with this key (any value) may use
	// GPU nodes without requesting a GPU. Default: nvidia.com/gpu.
	GPUNodeTaintKey string `json:"gpuNodeTaintKey,omitempty"`
	// GenericPodsOnUnlabelledGPUNodes lets GPU pods that name no model use GPU nodes that have
	// no product label. Default false: such a node takes no GPU pods until it is labelled.
	GenericPodsOnUnlabelledGPUNodes bool `json:"genericPodsOnUnlabelledGPUNodes,omitempty"`
	// GPUScoring is BinPack (default) or Spread.
	GPUScoring string `json:"gpuScoring,omitempty"`
}

// GPUSKU is a named GPU model with the product label values (aliases) it covers.
type GPUSKU struct {
	Name     string   `json:"name"`
	Products []string `json:"products"`
	Special  bool     `json:"special,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// IndexedPodTopologySpreadArgs configures IndexedPodTopologySpread. The fields, defaults and
// validation are upstream's PodTopologySpreadArgs.
type IndexedPodTopologySpreadArgs struct {
	metav1.TypeMeta `json:",inline"`

	// DefaultConstraints apply to pods that declare no topologySpreadConstraints; their
	// labelSelector must be empty, as it is deduced from the pod's Services and controllers.
	// When not empty, defaultingType must be List.
	// +listType=atomic
	DefaultConstraints []corev1.TopologySpreadConstraint `json:"defaultConstraints,omitempty"`
	// DefaultingType is System (hostname maxSkew 3 and zone maxSkew 5, ScheduleAnyway) or List.
	// Default: System.
	DefaultingType schedconfigv1.PodTopologySpreadConstraintsDefaulting `json:"defaultingType,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TeamPoolArgs configures the TeamPool plugin.
type TeamPoolArgs struct {
	metav1.TypeMeta `json:",inline"`

	// UnpooledNodes is the tier of nodes that belong to no ResourcePool: Shared (default) ranks
	// them with shared pools, Last after every pool.
	UnpooledNodes string `json:"unpooledNodes,omitempty"`
	// GPUResourceNames are the extended resources a pool's GPU figures add up.
	// Default: [nvidia.com/gpu].
	GPUResourceNames []string `json:"gpuResourceNames,omitempty"`
	// StatusUpdateInterval is the least time between two status writes of one pool. Default: 10s.
	StatusUpdateInterval *metav1.Duration `json:"statusUpdateInterval,omitempty"`
	// LeaderLease is the scheduler's leader-election Lease as "namespace/name"; pool status is
	// written only while this process holds it. Default: workbench-system/workbench-scheduler.
	// "-" writes always (a single scheduler without leader election).
	LeaderLease string `json:"leaderLease,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// GangArgs configures the Gang plugin.
type GangArgs struct {
	metav1.TypeMeta `json:",inline"`

	// SessionTimeout is how long an interactive session's gang (a PodGroup labelled
	// workbench.dev/session: "true") may take to be fully placed when its PodGroup sets no
	// scheduleTimeoutSeconds. Default: 5m, the start timeout of common notebook spawners.
	SessionTimeout *metav1.Duration `json:"sessionTimeout,omitempty"`
	// BatchTimeout is the same for every other gang. Default: 10m.
	BatchTimeout *metav1.Duration `json:"batchTimeout,omitempty"`
}
