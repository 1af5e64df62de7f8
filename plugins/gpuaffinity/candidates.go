package gpuaffinity

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/narrowing"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/tierhint"
)

// minFeasibleNodesToFind is upstream's sampling floor (schedule_one.go, v1.37.2): a cycle over
// fewer nodes filters and scores every one of them, whatever percentageOfNodesToScore says.
const minFeasibleNodesToFind = 100

// maxPackingCandidates is how many nodes PreFilter narrows a GPU pod's cycle to: the best-packed
// nodes that can hold it, one fewer than the sampling floor, so that Score sees each of them.
const maxPackingCandidates = minFeasibleNodesToFind - 1

// wideTTL is how long a pod whose narrowed cycle failed is scheduled without narrowing: long
// enough for its retry, short enough that packing resumes once the cluster has changed.
const wideTTL = time.Minute

// gpuNodeIndex lists the nodes with allocatable units of each GPU resource, by product label
// value, kept from node events: a GPU pod's PreFilter visits the nodes of its resource (and its
// models) only, never every node. Free units are not indexed: they change with every pod the
// scheduler assumes, before any event, and the snapshot has them exactly, one lookup per node.
type gpuNodeIndex struct {
	classes      *gpuClasses
	productLabel string
	synced       func() bool

	mu sync.RWMutex
	// nodes maps a GPU resource to the lower-cased product label values ("" unlabelled) of the
	// nodes that advertise it, and those to the nodes' names.
	nodes map[v1.ResourceName]map[string]sets.Set[string]
}

// indexKey is where a node is listed: its product and the GPU resources it has units of.
type indexKey struct {
	product   string
	resources []v1.ResourceName
}

func (k indexKey) equal(o indexKey) bool {
	return k.product == o.product && slices.Equal(k.resources, o.resources)
}

func newGPUNodeIndex(h fwk.Handle, classes *gpuClasses, productLabel string) (*gpuNodeIndex, error) {
	f := h.SharedInformerFactory()
	if f == nil {
		return nil, nil
	}
	x := &gpuNodeIndex{classes: classes, productLabel: productLabel, nodes: map[v1.ResourceName]map[string]sets.Set[string]{}}
	reg, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.update(nil, asNode(obj)) },
		UpdateFunc: func(old, cur any) { x.update(asNode(old), asNode(cur)) },
		DeleteFunc: func(obj any) { x.update(asNode(obj), nil) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: watching nodes: %w", Name, err)
	}
	x.synced = reg.HasSynced
	return x, nil
}

func asNode(obj any) *v1.Node {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, _ := obj.(*v1.Node)
	return n
}

func (x *gpuNodeIndex) keyOf(node *v1.Node) indexKey {
	if node == nil {
		return indexKey{}
	}
	k := indexKey{product: strings.ToLower(node.Labels[x.productLabel])}
	for name, q := range node.Status.Allocatable {
		if gpu, _ := x.classes.match(name); gpu && q.Value() > 0 {
			k.resources = append(k.resources, name)
		}
	}
	slices.Sort(k.resources)
	return k
}

// update moves a node between lists; most node updates (conditions, images) change neither its
// product nor its GPU resources and take no lock.
func (x *gpuNodeIndex) update(old, cur *v1.Node) {
	oldKey, curKey := x.keyOf(old), x.keyOf(cur)
	if old != nil && cur != nil && oldKey.equal(curKey) {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		for _, r := range oldKey.resources {
			byProduct := x.nodes[r]
			byProduct[oldKey.product].Delete(old.Name)
			if byProduct[oldKey.product].Len() == 0 {
				delete(byProduct, oldKey.product)
			}
		}
	}
	if cur != nil {
		for _, r := range curKey.resources {
			if x.nodes[r] == nil {
				x.nodes[r] = map[string]sets.Set[string]{}
			}
			if x.nodes[r][curKey.product] == nil {
				x.nodes[r][curKey.product] = sets.New[string]()
			}
			x.nodes[r][curKey.product].Insert(cur.Name)
		}
	}
}

// candidate is a node that can hold the pod, with the units it would have left.
type candidate struct {
	name      string
	freeAfter int64
}

// narrow returns the nodes a GPU pod's cycle is limited to, or nil for every node, and records
// why in the metrics. The nodes are the maxPackingCandidates that Score ranks best among those
// with free units for the whole request that Filter accepts, within what earlier PreFilters
// narrowed the cycle to. Every node left out is one that Score ranks lower, or that NodeResourcesFit
// (too few free units) or Filter would refuse; when the narrowed cycle fails all the same (the
// other filters refuse every node), PostFilter has the pod retried at once without narrowing,
// so nothing that fits elsewhere is turned away, and preemption only ever runs over every node.
func (pl *GPUAffinity) narrow(ctx context.Context, state fwk.CycleState, pod *v1.Pod, s *preFilterState) sets.Set[string] {
	switch {
	case pl.index == nil || !pl.index.synced():
		return nil
	case s.draBacked || namesNodes(pod):
		// DRA serves nodes that list no GPUs; NodeAffinity narrows by node name itself.
		countNarrowing(narrowingSkipped)
		return nil
	case tierhint.AllTiers(state):
		// Gang found no room in the narrowed cycles and plans over every node the pod may use.
		countNarrowing(narrowingSkipped)
		return nil
	case pl.isWide(pod.UID, time.Now()):
		countNarrowing(narrowingWide)
		return nil
	}
	prior := narrowing.Read(state)
	if prior != nil && prior.MaxLen() < minFeasibleNodesToFind {
		// The cycle is already below the sampling floor: Score sees each of its nodes.
		countNarrowing(narrowingSmallSet)
		return nil
	}
	cands := pl.candidates(s, prior)
	observeCandidates(len(cands))
	if len(cands) == 0 {
		// No node has free units: Filter over every node gives the usual reasons, and
		// preemption considers every node.
		countNarrowing(narrowingNoRoom)
		return nil
	}
	if len(cands) > maxPackingCandidates {
		slices.SortFunc(cands, func(a, b candidate) int {
			if pl.binPack {
				return cmp.Compare(a.freeAfter, b.freeAfter)
			}
			return cmp.Compare(b.freeAfter, a.freeAfter)
		})
		cands = cands[:maxPackingCandidates]
	}
	nodes := sets.New[string]()
	for _, c := range cands {
		nodes.Insert(c.name)
	}
	s.narrowedTo = len(nodes)
	countNarrowing(narrowingNarrowed)
	klog.FromContext(ctx).V(5).Info("Narrowed to the best-packed GPU nodes", "pod", klog.KObj(pod), "nodes", len(nodes))
	return nodes
}

// candidates lists the nodes of the pod's first GPU resource that have free units of every
// resource it requests and that Filter accepts, within prior. Models the pod cannot use are
// skipped by their index entry, without a look at their nodes.
func (pl *GPUAffinity) candidates(s *preFilterState, prior *narrowing.Sets) []candidate {
	req := s.req
	infos := pl.handle.SnapshotSharedLister().NodeInfos()
	pl.index.mu.RLock()
	defer pl.index.mu.RUnlock()
	byProduct := pl.index.nodes[req.units[0].name]
	n := 0
	for product, names := range byProduct {
		if pl.productMayServe(req, product) {
			n += names.Len()
		}
	}
	out := make([]candidate, 0, n)
	for product, names := range byProduct {
		if !pl.productMayServe(req, product) {
			continue
		}
	nodes:
		for name := range names {
			if prior != nil && !prior.Has(name) {
				continue
			}
			ni, err := infos.Get(name)
			if err != nil || ni.Node() == nil {
				continue
			}
			alloc := ni.GetAllocatable().GetScalarResources()
			used := ni.GetRequested().GetScalarResources()
			var freeAfter int64
			for _, u := range req.units {
				free := alloc[u.name] - used[u.name]
				if free < u.n {
					continue nodes
				}
				freeAfter += free - u.n
			}
			// The index's product is the node's, lower-cased, unless the label changed a moment
			// ago: then Filter, which reads the node, has the last word.
			if pl.filterGPUPod(s, ni, product, quietReject) != nil {
				continue
			}
			out = append(out, candidate{name: name, freeAfter: freeAfter})
		}
	}
	return out
}

// productMayServe is Filter's model rules for a whole index entry; Filter decides node by node.
func (pl *GPUAffinity) productMayServe(req *gpuRequest, product string) bool {
	if req.products != nil {
		return req.products.Has(product)
	}
	if product == "" {
		return pl.genericOnUnlabelled
	}
	_, special := pl.catalog.special[product]
	return !special || req.namesModel
}

// namesNodes reports whether the pod's required node affinity selects nodes by name: upstream's
// NodeAffinity then narrows the cycle to them, without recording it for us.
func namesNodes(pod *v1.Pod) bool {
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchFields {
			if r.Key == metav1.ObjectNameField {
				return true
			}
		}
	}
	return false
}

// PostFilter runs when no node passed Filter. If PreFilter had narrowed the cycle to the
// best-packed nodes, the pod is retried at once over every node (for wideTTL), and the chain
// ends here: preemption over the narrowed nodes only could evict pods for a pod that fits
// elsewhere. Otherwise the next PostFilter (TeamPool's, then preemption) decides.
func (pl *GPUAffinity) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	s, err := getPreFilterState(state)
	if err != nil || s.narrowedTo == 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	pl.rememberWide(pod.UID, time.Now())
	countNarrowing(narrowingFallback)
	logger := klog.FromContext(ctx)
	logger.V(4).Info("Every best-packed GPU node failed Filter; retrying over every node", "pod", klog.KObj(pod), "nodes", s.narrowedTo)
	pl.handle.Activate(logger, map[string]*v1.Pod{string(pod.UID): pod})
	return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
		fmt.Sprintf("none of the %d best-packed GPU nodes that can hold the pod passed the filters; retrying over every node", s.narrowedTo))
}

func (pl *GPUAffinity) isWide(uid types.UID, now time.Time) bool {
	pl.wideMu.Lock()
	defer pl.wideMu.Unlock()
	at, ok := pl.wide[uid]
	if ok && now.Sub(at) > wideTTL {
		delete(pl.wide, uid)
		return false
	}
	return ok
}

func (pl *GPUAffinity) rememberWide(uid types.UID, now time.Time) {
	pl.wideMu.Lock()
	defer pl.wideMu.Unlock()
	// Pods that were bound or deleted meanwhile age out here.
	if len(pl.wide) > 10_000 {
		for k, at := range pl.wide {
			if now.Sub(at) > wideTTL {
				delete(pl.wide, k)
			}
		}
	}
	pl.wide[uid] = now
}
