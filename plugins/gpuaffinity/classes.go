package gpuaffinity

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// memoryLabelSuffix completes a slice's resource name into the node label with its memory in
// MiB, as GPU Feature Discovery writes it: nvidia.com/mig-1g.10gb.memory.
const memoryLabelSuffix = ".memory"

// gpuClasses matches the extended resources that make a pod or a node a GPU one. Each matching
// resource name is its own packing unit: a MIG slice or a shared GPU is never added to whole
// GPUs.
type gpuClasses struct {
	// exact are the names listed as such: whole GPUs (nvidia.com/gpu) and shared GPUs
	// (nvidia.com/gpu.shared), whose memory per unit is the node's memory label.
	exact sets.Set[v1.ResourceName]
	// prefixes come from entries ending in "*": families of slices (nvidia.com/mig-*), whose
	// memory per unit is each slice's own label.
	prefixes []string
	// configured is the list as written, for messages.
	configured []string
}

func newGPUClasses(entries []string) *gpuClasses {
	c := &gpuClasses{exact: sets.New[v1.ResourceName](), configured: entries}
	for _, e := range entries {
		if prefix, ok := strings.CutSuffix(e, "*"); ok {
			c.prefixes = append(c.prefixes, prefix)
		} else {
			c.exact.Insert(v1.ResourceName(e))
		}
	}
	return c
}

// match reports whether name is a GPU resource and whether it is a slice (matched by a pattern
// only). It is on the filter path for every resource of every node a CPU pod is checked
// against, so names without a domain (cpu, memory, pods, hugepages-2Mi) return at once.
func (c *gpuClasses) match(name v1.ResourceName) (gpu, slice bool) {
	if strings.IndexByte(string(name), '/') < 0 {
		return false, false
	}
	if c.exact.Has(name) {
		return true, false
	}
	for _, p := range c.prefixes {
		if strings.HasPrefix(string(name), p) {
			return true, true
		}
	}
	return false, false
}

// isSliceMemoryLabel reports whether a node label key is the memory label of a slice resource.
func (c *gpuClasses) isSliceMemoryLabel(key string) bool {
	name, ok := strings.CutSuffix(key, memoryLabelSuffix)
	if !ok {
		return false
	}
	_, slice := c.match(v1.ResourceName(name))
	return slice
}

func (c *gpuClasses) String() string { return strings.Join(c.configured, ", ") }
