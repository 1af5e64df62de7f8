package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

// Defaults of GPUAffinityArgs.
const (
	// DefaultGPUResourceName is whole NVIDIA GPUs, and TeamPool's default GPU resource.
	DefaultGPUResourceName   = "nvidia.com/gpu"
	DefaultGPUProductLabel   = "nvidia.com/gpu.product"
	DefaultGPUCountLabel     = "nvidia.com/gpu.count"
	DefaultGPUMemoryLabel    = "nvidia.com/gpu.memory"
	DefaultCPUPodsOnGPUNodes = "Deny"
	DefaultGPUNodeTaintKey   = "nvidia.com/gpu"
	DefaultGPUScoring        = "BinPack"
)

// DefaultGPUResourceClasses are the resources that make a pod or node a GPU one: whole NVIDIA
// GPUs, MIG slices of every profile (the device plugin's mixed strategy), time-sliced GPUs
// renamed by the device plugin, AMD GPUs and Intel GPUs.
func DefaultGPUResourceClasses() []string {
	return []string{DefaultGPUResourceName, "nvidia.com/mig-*", "nvidia.com/gpu.shared", "amd.com/gpu", "gpu.intel.com/i915"}
}

// SetDefaults_GPUAffinityArgs fills what the user left out.
func SetDefaults_GPUAffinityArgs(obj *GPUAffinityArgs) {
	if len(obj.GPUResourceNames) == 0 {
		obj.GPUResourceNames = DefaultGPUResourceClasses()
	}
	if obj.ProductLabel == "" {
		obj.ProductLabel = DefaultGPUProductLabel
	}
	if obj.CountLabel == "" {
		obj.CountLabel = DefaultGPUCountLabel
	}
	if obj.GPUNodeTaintKey == "" {
		obj.GPUNodeTaintKey = DefaultGPUNodeTaintKey
	}
	if obj.MemoryLabel == "" {
		obj.MemoryLabel = DefaultGPUMemoryLabel
	}
	if obj.CPUPodsOnGPUNodes == "" {
		obj.CPUPodsOnGPUNodes = DefaultCPUPodsOnGPUNodes
	}
	if obj.GPUScoring == "" {
		obj.GPUScoring = DefaultGPUScoring
	}
}

// SetDefaults_IndexedPodTopologySpreadArgs defaults as upstream defaults PodTopologySpreadArgs.
func SetDefaults_IndexedPodTopologySpreadArgs(obj *IndexedPodTopologySpreadArgs) {
	if obj.DefaultingType == "" {
		obj.DefaultingType = schedconfigv1.SystemDefaulting
	}
}

// Defaults of TeamPoolArgs.
const (
	DefaultUnpooledNodes = "Shared"
	DefaultLeaderLease   = "workbench-system/workbench-scheduler"
	// NoLeaderLease in leaderLease makes every instance write pool status.
	NoLeaderLease               = "-"
	DefaultStatusUpdateInterval = 10 * time.Second
)

// SetDefaults_TeamPoolArgs fills what the user left out.
func SetDefaults_TeamPoolArgs(obj *TeamPoolArgs) {
	if obj.UnpooledNodes == "" {
		obj.UnpooledNodes = DefaultUnpooledNodes
	}
	if len(obj.GPUResourceNames) == 0 {
		obj.GPUResourceNames = []string{DefaultGPUResourceName}
	}
	if obj.StatusUpdateInterval == nil {
		obj.StatusUpdateInterval = &metav1.Duration{Duration: DefaultStatusUpdateInterval}
	}
	if obj.LeaderLease == "" {
		obj.LeaderLease = DefaultLeaderLease
	}
}

// Defaults of GangArgs.
const (
	DefaultSessionTimeout = 5 * time.Minute
	DefaultBatchTimeout   = 10 * time.Minute
)

// SetDefaults_GangArgs fills what the user left out.
func SetDefaults_GangArgs(obj *GangArgs) {
	if obj.SessionTimeout == nil {
		obj.SessionTimeout = &metav1.Duration{Duration: DefaultSessionTimeout}
	}
	if obj.BatchTimeout == nil {
		obj.BatchTimeout = &metav1.Duration{Duration: DefaultBatchTimeout}
	}
}
