package config

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// CPUPodsOnGPUNodesPolicy says whether pods that request no GPU may use GPU nodes.
type CPUPodsOnGPUNodesPolicy string

const (
	// CPUPodsOnGPUNodesDeny keeps pods without a GPU request off nodes with allocatable GPUs.
	CPUPodsOnGPUNodesDeny CPUPodsOnGPUNodesPolicy = "Deny"
	// CPUPodsOnGPUNodesAllow lets them land there.
	CPUPodsOnGPUNodesAllow CPUPodsOnGPUNodesPolicy = "Allow"
)

// GPUScoringStrategy ranks nodes for GPU pods.
type GPUScoringStrategy string

const (
	// GPUScoringBinPack prefers the node left with the fewest free GPUs, keeping whole nodes free.
	GPUScoringBinPack GPUScoringStrategy = "BinPack"
	// GPUScoringSpread prefers the node left with the most free GPUs.
	GPUScoringSpread GPUScoringStrategy = "Spread"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// GPUAffinityArgs configures the GPUAffinity plugin.
type GPUAffinityArgs struct {
	metav1.TypeMeta

	// GPUResourceNames are the GPU resource classes: extended resource names, or a prefix of
	// one followed by "*" (nvidia.com/mig-*), whose request makes a pod a GPU pod and whose
	// capacity or allocatable makes a node a GPU node. Each resource name is its own packing
	// unit; a resource matched by a pattern is a slice, whose memory is its own label's.
	GPUResourceNames []string
	// ProductLabel is the node label naming the GPU model (GPU Feature Discovery's).
	ProductLabel string
	// CountLabel is a node label whose presence marks a GPU node; empty: none.
	CountLabel string
	// GPUNodeLabels are more node label keys whose presence marks a GPU node.
	GPUNodeLabels []string
	// MemoryLabel is the node label giving per-GPU memory in MiB.
	MemoryLabel string
	// SKUs name GPU models; a special SKU only takes pods that name it.
	SKUs []GPUSKU
	// CPUPodsOnGPUNodes is Deny or Allow.
	CPUPodsOnGPUNodes CPUPodsOnGPUNodesPolicy
	// GPUNodeTaintKey: a pod that tolerates a NoSchedule taint with this key may use GPU nodes
	// without requesting a GPU. Empty: no toleration exempts a pod.
	GPUNodeTaintKey string
	// GenericPodsOnUnlabelledGPUNodes lets GPU pods that name no model use GPU nodes without the
	// product label. False (fail closed): such nodes take no GPU pods until they are labelled.
	GenericPodsOnUnlabelledGPUNodes bool
	// GPUScoring is BinPack or Spread.
	GPUScoring GPUScoringStrategy
}

// GPUSKU is a named GPU model with the product label values (aliases) it covers.
type GPUSKU struct {
	Name     string
	Products []string
	Special  bool
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// IndexedPodTopologySpreadArgs configures IndexedPodTopologySpread. The fields are upstream's
// PodTopologySpreadArgs, so a profile switches plugins by changing only the name.
type IndexedPodTopologySpreadArgs struct {
	metav1.TypeMeta

	// DefaultConstraints apply to pods that declare no topologySpreadConstraints.
	DefaultConstraints []corev1.TopologySpreadConstraint
	// DefaultingType is System (upstream's built-in constraints) or List (DefaultConstraints).
	DefaultingType schedconfig.PodTopologySpreadConstraintsDefaulting
}

// UnpooledNodesTier says where nodes that belong to no ResourcePool rank for TeamPool.
type UnpooledNodesTier string

const (
	// UnpooledNodesShared ranks nodes in no pool with shared pools.
	UnpooledNodesShared UnpooledNodesTier = "Shared"
	// UnpooledNodesLast ranks nodes in no pool after every pool, lendable ones included.
	UnpooledNodesLast UnpooledNodesTier = "Last"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TeamPoolArgs configures the TeamPool plugin.
type TeamPoolArgs struct {
	metav1.TypeMeta

	// UnpooledNodes is the tier of nodes in no ResourcePool: Shared or Last.
	UnpooledNodes UnpooledNodesTier
	// GPUResourceNames are the extended resources a pool's GPU figures add up.
	GPUResourceNames []string
	// StatusUpdateInterval is the least time between two status writes of one pool.
	StatusUpdateInterval metav1.Duration
	// LeaderLease is the scheduler's leader-election Lease, "namespace/name". Pool status is
	// written only while this process holds it; "-" means always (no leader election).
	LeaderLease string
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// GangArgs configures the Gang plugin.
type GangArgs struct {
	metav1.TypeMeta

	// SessionTimeout is how long an interactive session's gang may take to be fully placed
	// when its PodGroup sets no scheduleTimeoutSeconds.
	SessionTimeout metav1.Duration
	// BatchTimeout is the same for every other gang.
	BatchTimeout metav1.Duration
}
