// Package gpuaffinity places GPU work: it keeps pods without a GPU request off GPU nodes, keeps
// generic GPU requests off special SKUs, honours a pod's GPU model and memory requirements, and
// bin-packs GPU pods so that whole nodes stay free for large sessions.
package gpuaffinity

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	_ "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/validation"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "GPUAffinity"

// signFragmentKey names our part of a pod's batching signature.
const signFragmentKey = "workbench.dev/GPUAffinity"

var (
	_ fwk.PreFilterPlugin   = &GPUAffinity{}
	_ fwk.FilterPlugin      = &GPUAffinity{}
	_ fwk.PreScorePlugin    = &GPUAffinity{}
	_ fwk.ScorePlugin       = &GPUAffinity{}
	_ fwk.ScoreExtensions   = &GPUAffinity{}
	_ fwk.EnqueueExtensions = &GPUAffinity{}
	_ fwk.SignPlugin        = &GPUAffinity{}
)

// GPUAffinity is the plugin.
type GPUAffinity struct {
	handle       fwk.Handle
	gpuResources []v1.ResourceName
	productLabel string
	memoryLabel  string
	catalog      *skuCatalog
	denyCPUPods  bool
	binPack      bool
	// noGPUsMessage is the same for every node, so it is built once.
	noGPUsMessage string
}

// New builds the plugin from defaulted GPUAffinityArgs, validating them.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.GPUAffinityArgs)
	if !ok {
		return nil, fmt.Errorf("%s: want args of type GPUAffinityArgs, got %T", Name, obj)
	}
	if err := validation.ValidateGPUAffinityArgs(field.NewPath("pluginConfig").Key(Name).Child("args"), args); err != nil {
		return nil, err
	}
	pl := &GPUAffinity{
		handle:       h,
		productLabel: args.ProductLabel,
		memoryLabel:  args.MemoryLabel,
		catalog:      newCatalog(args.SKUs),
		denyCPUPods:  args.CPUPodsOnGPUNodes == config.CPUPodsOnGPUNodesDeny,
		binPack:      args.GPUScoring == config.GPUScoringBinPack,
	}
	for _, name := range args.GPUResourceNames {
		pl.gpuResources = append(pl.gpuResources, v1.ResourceName(name))
	}
	pl.noGPUsMessage = fmt.Sprintf("node has no GPUs (%s)", joinResourceNames(pl.gpuResources))
	registerMetrics(h, pl)
	return pl, nil
}

func newCatalog(skus []config.GPUSKU) *skuCatalog {
	c := &skuCatalog{byName: map[string][]string{}, products: sets.New[string](), special: map[string]string{}}
	for _, sku := range skus {
		var products []string
		for _, p := range sku.Products {
			lp := strings.ToLower(p)
			products = append(products, lp)
			c.products.Insert(lp)
			if sku.Special {
				c.special[lp] = sku.Name
			}
		}
		c.byName[strings.ToLower(sku.Name)] = products
		c.names = append(c.names, sku.Name)
	}
	return c
}

// Name returns the plugin name.
func (pl *GPUAffinity) Name() string { return Name }

// parse reads a pod's GPU request. Product values that no SKU lists are accepted when a node
// carries them, so a cluster works without listing every model it has.
func (pl *GPUAffinity) parse(pod *v1.Pod) (*gpuRequest, error) {
	return parseGPURequest(pod, pl.gpuResources, pl.productLabel, pl.catalog, pl.productOnSomeNode)
}

func (pl *GPUAffinity) productOnSomeNode(product string) bool {
	nodes, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if strings.EqualFold(n.Node().Labels[pl.productLabel], product) {
			return true
		}
	}
	return false
}

// draBackedGPUs reports whether a DeviceClass serves one of the GPU resource names.
func (pl *GPUAffinity) draBackedGPUs() bool {
	dra := pl.handle.SharedDRAManager()
	if dra == nil {
		return false
	}
	resolver := dra.DeviceClassResolver()
	if resolver == nil {
		return false
	}
	for _, name := range pl.gpuResources {
		if resolver.GetDeviceClass(name) != nil {
			return true
		}
	}
	return false
}

// allocatableGPUsOf returns a node's allocatable GPUs; most nodes have no extended resources.
func (pl *GPUAffinity) allocatableGPUsOf(nodeInfo fwk.NodeInfo) int64 {
	alloc := nodeInfo.GetAllocatable().GetScalarResources()
	if len(alloc) == 0 {
		return 0
	}
	var n int64
	for _, name := range pl.gpuResources {
		n += alloc[name]
	}
	return n
}

// gpuCounts returns a node's allocatable and requested GPUs over all GPU resource names.
func (pl *GPUAffinity) gpuCounts(nodeInfo fwk.NodeInfo) (allocatable, requested int64) {
	alloc := nodeInfo.GetAllocatable().GetScalarResources()
	used := nodeInfo.GetRequested().GetScalarResources()
	for _, name := range pl.gpuResources {
		allocatable += alloc[name]
		requested += used[name]
	}
	return allocatable, requested
}

// SignPod signs everything Filter and Score read from the pod, so that pods with equal
// signatures may share a batched result even in a profile without NodeResourcesFit or
// NodeAffinity.
func (pl *GPUAffinity) SignPod(ctx context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: signFragmentKey, Value: struct {
		Model, MinMemory     string
		GPUs                 int64
		Daemon, NamesProduct bool
	}{pod.Annotations[ModelAnnotation], pod.Annotations[MinMemoryAnnotation], countGPUs(pod, pl.gpuResources),
		isDaemonPod(pod), selectsProductLabel(pod, pl.productLabel)}}}, nil
}

// EventsToRegister names the events that can make a pod we rejected schedulable.
func (pl *GPUAffinity) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeAllocatable}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		// No hint for pods leaving: no GPUAffinity rejection depends on other pods, and a GPU pod
		// leaving is NodeResourcesFit's event (its hint requeues pods it rejected for capacity).
		// The pod's own annotations: a fixed typo makes it schedulable.
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodUpdated},
	}, nil
}

func (pl *GPUAffinity) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if oldNode == nil {
		return fwk.Queue, nil
	}
	if oldNode.Labels[pl.productLabel] != newNode.Labels[pl.productLabel] ||
		oldNode.Labels[pl.memoryLabel] != newNode.Labels[pl.memoryLabel] ||
		pl.allocatableGPUs(oldNode) != pl.allocatableGPUs(newNode) {
		return fwk.Queue, nil
	}
	logger.V(5).Info("Node change leaves its GPUs as they were", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.QueueSkip, nil
}

func (pl *GPUAffinity) isSchedulableAfterPodUpdated(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if oldPod.Annotations[ModelAnnotation] != newPod.Annotations[ModelAnnotation] ||
		oldPod.Annotations[MinMemoryAnnotation] != newPod.Annotations[MinMemoryAnnotation] {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *GPUAffinity) allocatableGPUs(node *v1.Node) int64 {
	return nodeAllocatableGPUs(node, pl.gpuResources)
}

// nodeAllocatableGPUs sums a node's allocatable over the GPU resource names.
func nodeAllocatableGPUs(node *v1.Node, gpuResources []v1.ResourceName) int64 {
	var n int64
	for _, name := range gpuResources {
		if q, ok := node.Status.Allocatable[name]; ok {
			n += q.Value()
		}
	}
	return n
}
