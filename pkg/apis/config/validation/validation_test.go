package validation

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
)

// GPUAffinity's resource classes take patterns; TeamPool adds up exact resources and does not.
func TestGPUResourcePatterns(t *testing.T) {
	path := field.NewPath("args")
	gpu := &config.GPUAffinityArgs{
		GPUResourceNames: configv1.DefaultGPUResourceClasses(), ProductLabel: "nvidia.com/gpu.product", MemoryLabel: "nvidia.com/gpu.memory",
		CPUPodsOnGPUNodes: config.CPUPodsOnGPUNodesDeny, GPUScoring: config.GPUScoringBinPack,
	}
	if err := ValidateGPUAffinityArgs(path, gpu); err != nil {
		t.Errorf("GPUAffinity with the default classes: %v", err)
	}
	pool := &config.TeamPoolArgs{
		UnpooledNodes: config.UnpooledNodesShared, GPUResourceNames: []string{"nvidia.com/gpu", "nvidia.com/mig-*"},
		StatusUpdateInterval: metav1.Duration{Duration: configv1.DefaultStatusUpdateInterval}, LeaderLease: NoLeaderLease,
	}
	err := ValidateTeamPoolArgs(path, pool)
	if want := `args.gpuResourceNames[1]: Invalid value: "nvidia.com/mig-*": must be an extended resource name such as nvidia.com/gpu`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("TeamPool with a pattern: err = %v, want %q", err, want)
	}
}
