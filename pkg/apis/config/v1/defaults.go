package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

// Defaults of GPUAffinityArgs.
const (
	DefaultGPUResourceName   = "nvidia.com/gpu"
	DefaultGPUProductLabel   = "nvidia.com/gpu.product"
	DefaultGPUMemoryLabel    = "nvidia.com/gpu.memory"
	DefaultCPUPodsOnGPUNodes = "Deny"
	DefaultGPUScoring        = "BinPack"
)

// SetDefaults_GPUAffinityArgs fills what the user left out.
func SetDefaults_GPUAffinityArgs(obj *GPUAffinityArgs) {
	if len(obj.GPUResourceNames) == 0 {
		obj.GPUResourceNames = []string{DefaultGPUResourceName}
	}
	if obj.ProductLabel == "" {
		obj.ProductLabel = DefaultGPUProductLabel
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
