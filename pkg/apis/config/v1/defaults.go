package v1

import schedconfigv1 "k8s.io/kube-scheduler/config/v1"

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
