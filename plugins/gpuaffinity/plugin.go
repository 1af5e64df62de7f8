// Package gpuaffinity places GPU work: it keeps pods without a GPU request off GPU nodes, keeps
// generic GPU requests off special SKUs, honours a pod's GPU model and memory requirements, and
// bin-packs GPU pods so that whole nodes stay free for large sessions.
package gpuaffinity

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
	_ fwk.PostFilterPlugin  = &GPUAffinity{}
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
	classes      *gpuClasses
	productLabel string
	memoryLabel  string
	// gpuNodeLabels are the label keys whose presence makes a node a GPU node: the product
	// label, the count label and the configured ones.
	gpuNodeLabels []string
	// gpuTaint is the taint key whose toleration exempts a pod from the CPU-pod rule; "" none.
	gpuTaint            string
	catalog             *skuCatalog
	denyCPUPods         bool
	genericOnUnlabelled bool
	binPack             bool
	// exemptionHint ends the CPU-pod rule's message: how a pod may opt in.
	exemptionHint string
	// index lists GPU nodes by resource and product, for PreFilter's narrowing; nil without
	// informers (then nothing is narrowed).
	index *gpuNodeIndex
	// wide holds pods whose narrowed cycle failed, and when: they are scheduled without
	// narrowing for wideTTL.
	wideMu sync.Mutex
	wide   map[types.UID]time.Time
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
		handle:              h,
		classes:             newGPUClasses(args.GPUResourceNames),
		productLabel:        args.ProductLabel,
		memoryLabel:         args.MemoryLabel,
		gpuTaint:            args.GPUNodeTaintKey,
		catalog:             newCatalog(args.SKUs),
		denyCPUPods:         args.CPUPodsOnGPUNodes == config.CPUPodsOnGPUNodesDeny,
		genericOnUnlabelled: args.GenericPodsOnUnlabelledGPUNodes,
		binPack:             args.GPUScoring == config.GPUScoringBinPack,
		wide:                map[types.UID]time.Time{},
	}
	pl.gpuNodeLabels = append(pl.gpuNodeLabels, args.ProductLabel)
	if args.CountLabel != "" {
		pl.gpuNodeLabels = append(pl.gpuNodeLabels, args.CountLabel)
	}
	pl.gpuNodeLabels = append(pl.gpuNodeLabels, args.GPUNodeLabels...)
	if pl.gpuTaint != "" {
		pl.exemptionHint = fmt.Sprintf(" unless they tolerate the %s taint", pl.gpuTaint)
	}
	index, err := newGPUNodeIndex(h, pl.classes, pl.productLabel)
	if err != nil {
		return nil, err
	}
	pl.index = index
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
	return parseGPURequest(pod, pl.classes, pl.requestLabels(), pl.catalog, pl.productOnSomeNode)
}

func (pl *GPUAffinity) requestLabels() requestLabels {
	return requestLabels{product: pl.productLabel, memory: pl.memoryLabel, gpuTaint: pl.gpuTaint}
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

// draBacked reports whether a DeviceClass serves one of the requested GPU resources.
func (pl *GPUAffinity) draBacked(units []unitRequest) bool {
	dra := pl.handle.SharedDRAManager()
	if dra == nil {
		return false
	}
	resolver := dra.DeviceClassResolver()
	if resolver == nil {
		return false
	}
	for _, u := range units {
		if resolver.GetDeviceClass(u.name) != nil {
			return true
		}
	}
	return false
}

// SignPod signs everything Filter and Score read from the pod, so that pods with equal
// signatures may share a batched result even in a profile without NodeResourcesFit or
// NodeAffinity.
func (pl *GPUAffinity) SignPod(ctx context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	type unit struct {
		Name string
		N    int64
	}
	var units []unit
	for _, u := range podUnits(pod, pl.classes, pl.memoryLabel) {
		units = append(units, unit{string(u.name), u.n})
	}
	model, hasModel := pod.Annotations[ModelAnnotation]
	minMemory, hasMinMemory := pod.Annotations[MinMemoryAnnotation]
	return []fwk.SignFragment{{Key: signFragmentKey, Value: struct {
		Model, MinMemory                        string
		HasModel, HasMinMemory                  bool
		Units                                   []unit
		Daemon, NamesProduct, ToleratesGPUTaint bool
	}{model, minMemory, hasModel, hasMinMemory, units,
		isDaemonPod(pod), selectsProductLabel(pod, pl.productLabel), toleratesTaintKey(pod.Spec.Tolerations, pl.gpuTaint)}}}, nil
}

// EventsToRegister names the events that can make a pod we rejected schedulable.
func (pl *GPUAffinity) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel | fwk.UpdateNodeAllocatable}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		// No hint for pods leaving: no GPUAffinity rejection depends on other pods, and a GPU pod
		// leaving is NodeResourcesFit's event (its hint requeues pods it rejected for capacity).
		// The pod's own annotations and tolerations: a fixed typo or an added toleration of the
		// GPU taint makes it schedulable.
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodUpdated},
	}, nil
}

func (pl *GPUAffinity) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if oldNode == nil || !pl.sameGPUs(oldNode, newNode) {
		return fwk.Queue, nil
	}
	logger.V(5).Info("Node change leaves its GPUs as they were", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.QueueSkip, nil
}

// sameGPUs reports whether two versions of a node look the same to Filter: the labels it reads
// and its GPU resources, both present or absent with equal values.
func (pl *GPUAffinity) sameGPUs(a, b *v1.Node) bool {
	if !sameLabel(a, b, pl.memoryLabel) {
		return false
	}
	for _, key := range pl.gpuNodeLabels {
		if !sameLabel(a, b, key) {
			return false
		}
	}
	return sameWhere(a.Labels, b.Labels, pl.classes.isSliceMemoryLabel, func(x, y string) bool { return x == y }) &&
		sameWhere(a.Status.Allocatable, b.Status.Allocatable, pl.isGPUResource, resource.Quantity.Equal) &&
		sameWhere(a.Status.Capacity, b.Status.Capacity, pl.isGPUResource, resource.Quantity.Equal)
}

func sameLabel(a, b *v1.Node, key string) bool {
	av, aok := a.Labels[key]
	bv, bok := b.Labels[key]
	return aok == bok && av == bv
}

func (pl *GPUAffinity) isGPUResource(name v1.ResourceName) bool {
	gpu, _ := pl.classes.match(name)
	return gpu
}

// sameWhere reports whether a and b hold the same keys that keep, with equal values.
func sameWhere[K comparable, V any](a, b map[K]V, keep func(K) bool, equal func(V, V) bool) bool {
	n := 0
	for k, av := range a {
		if !keep(k) {
			continue
		}
		n++
		if bv, ok := b[k]; !ok || !equal(av, bv) {
			return false
		}
	}
	for k := range b {
		if keep(k) {
			n--
		}
	}
	return n == 0
}

func (pl *GPUAffinity) isSchedulableAfterPodUpdated(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	for _, a := range []string{ModelAnnotation, MinMemoryAnnotation} {
		// Presence counts: an invalid "" removed is a fix, though both read as "".
		ov, ook := oldPod.Annotations[a]
		nv, nok := newPod.Annotations[a]
		if ook != nok || ov != nv {
			return fwk.Queue, nil
		}
	}
	if toleratesTaintKey(oldPod.Spec.Tolerations, pl.gpuTaint) != toleratesTaintKey(newPod.Spec.Tolerations, pl.gpuTaint) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// nodeAllocatableGPUs sums a node's allocatable over its GPU resources, in units.
func nodeAllocatableGPUs(node *v1.Node, classes *gpuClasses) int64 {
	var n int64
	for name, q := range node.Status.Allocatable {
		if gpu, _ := classes.match(name); gpu {
			n += q.Value()
		}
	}
	return n
}
