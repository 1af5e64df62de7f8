package gpuaffinity

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestInventorySummary(t *testing.T) {
	nodes, running := testCluster()
	// a100-2 gets 8 in use (full), t4-1 gets 1 (partly used); a finished pod counts for nothing.
	running = append(running,
		gpuPod("full", "8").Node("a100-2").Obj(),
		gpuPod("one", "1").Node("t4-1").Obj(),
		gpuPod("done", "2").Node("h100-1").Phase(v1.PodSucceeded).Obj(),
		cpuPod("cpu").Node("cpu-1").Obj(),
	)
	nodeIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range nodes {
		if err := nodeIndexer.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	podIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, p := range running {
		if err := podIndexer.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	inv := &gpuInventory{
		nodes: corelisters.NewNodeLister(nodeIndexer), pods: corelisters.NewPodLister(podIndexer),
		classes: newGPUClasses([]string{string(gpu)}), productLabel: "nvidia.com/gpu.product",
	}
	got, err := inv.summarize()
	if err != nil {
		t.Fatal(err)
	}
	want := &gpuSummary{
		freeByProduct: map[string]int64{
			"Tesla-T4": 3, "NVIDIA-A100-SXM4-80GB": 2, "NVIDIA-H100-80GB-HBM3": 8, "": 2, "NVIDIA-L4": 4,
		},
		fragmentedFree: 3 + 2, // t4-1 and a100-1 (6 of 8 used)
		idleFree:       8 + 2 + 4,
		idleNodes:      3, // h100-1, unlabelled-1, l4-1
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(gpuSummary{})); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

// BenchmarkInventorySummary is the cost of one /metrics scrape of the GPU gauges at 7,500 nodes
// and 200,000 pods (paid by the scrape, not by scheduling).
func BenchmarkInventorySummary(b *testing.B) {
	nodeIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	podIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for i := range 7500 {
		n := gpuNode(fmt.Sprintf("n-%04d", i), "", "", 0)
		if i%5 == 0 {
			n = gpuNode(fmt.Sprintf("n-%04d", i), "NVIDIA-A100-SXM4-80GB", "81920", 8)
		}
		if err := nodeIndexer.Add(n); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 200_000 {
		p := cpuPod(fmt.Sprintf("p-%06d", i)).Node(fmt.Sprintf("n-%04d", i%7500)).Obj()
		if i%40 == 0 {
			p = gpuPod(fmt.Sprintf("p-%06d", i), "1").Node(fmt.Sprintf("n-%04d", (i/5)%1500*5)).Obj()
		}
		if err := podIndexer.Add(p); err != nil {
			b.Fatal(err)
		}
	}
	inv := &gpuInventory{
		nodes: corelisters.NewNodeLister(nodeIndexer), pods: corelisters.NewPodLister(podIndexer),
		classes: newGPUClasses([]string{string(gpu)}), productLabel: "nvidia.com/gpu.product",
	}
	for b.Loop() {
		if _, err := inv.summarize(); err != nil {
			b.Fatal(err)
		}
	}
}
