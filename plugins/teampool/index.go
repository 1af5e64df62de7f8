package teampool

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

// amounts are the resources a pool reports: CPU in millicores, memory in bytes, GPUs.
type amounts struct {
	milliCPU, memory, gpu int64
}

func (a *amounts) add(b amounts) {
	a.milliCPU += b.milliCPU
	a.memory += b.memory
	a.gpu += b.gpu
}

func (a *amounts) sub(b amounts) {
	a.milliCPU -= b.milliCPU
	a.memory -= b.memory
	a.gpu -= b.gpu
}

// pool is one ResourcePool as the index knows it.
type pool struct {
	name     string
	owner    orgtree.Team
	lendable bool
	selector labels.Selector
	// specificity ranks overlapping pools: more requirements wins.
	specificity int
	// invalid says why the pool is ignored (a selector that slipped past the CRD's validation).
	invalid    string
	generation int64

	nodes sets.Set[string]
	// frozen is a copy of nodes handed to scheduling cycles (which must not see it change);
	// nil after a change until a cycle asks for it.
	frozen atomic.Pointer[sets.Set[string]]
	// overlapping counts this pool's nodes that also match another pool.
	overlapping int
	capacity    amounts
	allocated   amounts
}

// nodeSet returns an immutable view of the pool's nodes. Call with the index read-locked.
func (p *pool) nodeSet() sets.Set[string] {
	if s := p.frozen.Load(); s != nil {
		return *s
	}
	s := p.nodes.Clone()
	p.frozen.Store(&s)
	return s
}

func (p *pool) changed() {
	p.frozen.Store(nil)
}

// nodeEntry is one node's part in the index. A node may be known only from its pods (their
// events can arrive before the node's), then present is false.
type nodeEntry struct {
	present     bool
	labels      labels.Set
	allocatable amounts
	used        amounts
	pods        int
	pool        *pool
	// matches are every valid pool whose selector matches the node.
	matches []*pool
}

// poolIndex keeps pool membership and usage from ResourcePool, node and pod events, so that a
// scheduling cycle reads per-pool figures without walking nodes or pods.
type poolIndex struct {
	gpuResources []v1.ResourceName

	mu sync.RWMutex
	// pools by name; ordered holds the valid ones, most specific first, then by name.
	pools   map[string]*pool
	ordered []*pool
	nodes   map[string]*nodeEntry
	// unpooled are present nodes in no pool, as a pseudo-pool (name "").
	unpooled *pool
	// version moves on every change of membership or usage; the status writer compares it.
	version atomic.Uint64
	// membership moves when a node joins or leaves a pool (or the unpooled set).
	membership atomic.Uint64
}

func newPoolIndex(gpuResources []v1.ResourceName) *poolIndex {
	return &poolIndex{
		gpuResources: gpuResources,
		pools:        map[string]*pool{},
		nodes:        map[string]*nodeEntry{},
		unpooled:     &pool{nodes: sets.New[string]()},
	}
}

func (idx *poolIndex) gpus(list v1.ResourceList) int64 {
	var n int64
	for _, name := range idx.gpuResources {
		if q, ok := list[name]; ok {
			n += q.Value()
		}
	}
	return n
}

func (idx *poolIndex) nodeAmounts(node *v1.Node) amounts {
	a := node.Status.Allocatable
	return amounts{milliCPU: a.Cpu().MilliValue(), memory: a.Memory().Value(), gpu: idx.gpus(a)}
}

func (idx *poolIndex) podAmounts(pod *v1.Pod) amounts {
	return idx.amountsOf(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

func (idx *poolIndex) amountsOf(requests v1.ResourceList) amounts {
	return amounts{milliCPU: requests.Cpu().MilliValue(), memory: requests.Memory().Value(), gpu: idx.gpus(requests)}
}

// newPool converts a ResourcePool; a bad owner or selector marks it invalid instead of failing.
func newPool(rp *workbenchv1alpha1.ResourcePool) *pool {
	p := &pool{name: rp.Name, lendable: rp.Spec.Lendable, generation: rp.Generation, nodes: sets.New[string]()}
	owner, err := orgtree.ParseOwner(rp.Spec.Owner)
	if err != nil {
		p.invalid = fmt.Sprintf("spec.owner %q is not a team path: %v", rp.Spec.Owner, err)
		return p
	}
	p.owner = owner
	sel := rp.Spec.NodeSelector
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		p.invalid = "spec.nodeSelector is empty; it would take every node"
		return p
	}
	selector, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		p.invalid = fmt.Sprintf("spec.nodeSelector: %v", err)
		return p
	}
	p.selector = selector
	p.specificity = orgtree.Specificity(rp)
	return p
}

// setPool adds or replaces a pool and reassigns every node: O(nodes x pools), on pool changes only.
func (idx *poolIndex) setPool(rp *workbenchv1alpha1.ResourcePool) *pool {
	p := newPool(rp)
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.pools[p.name] = p
	idx.reassignAllLocked()
	return p
}

func (idx *poolIndex) deletePool(name string) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if _, ok := idx.pools[name]; !ok {
		return
	}
	delete(idx.pools, name)
	idx.reassignAllLocked()
}

func (idx *poolIndex) reassignAllLocked() {
	idx.ordered = idx.ordered[:0]
	for _, p := range idx.pools {
		p.nodes = sets.New[string]()
		p.capacity, p.allocated, p.overlapping = amounts{}, amounts{}, 0
		p.changed()
		if p.invalid == "" {
			idx.ordered = append(idx.ordered, p)
		}
	}
	slices.SortFunc(idx.ordered, func(a, b *pool) int {
		return orgtree.ComparePrecedence(a.specificity, a.name, b.specificity, b.name)
	})
	idx.unpooled = &pool{nodes: sets.New[string]()}
	idx.membership.Add(1)
	for name, n := range idx.nodes {
		n.pool, n.matches = nil, nil
		if n.present {
			idx.assignLocked(name, n)
		}
	}
	idx.version.Add(1)
}

// assignLocked puts a present node into its pool (the first matching in order) or unpooled.
func (idx *poolIndex) assignLocked(name string, n *nodeEntry) {
	n.matches = n.matches[:0]
	for _, p := range idx.ordered {
		if p.selector.Matches(n.labels) {
			n.matches = append(n.matches, p)
		}
	}
	target := idx.unpooled
	if len(n.matches) > 0 {
		target = n.matches[0]
		n.pool = target
	}
	target.nodes.Insert(name)
	target.capacity.add(n.allocatable)
	target.allocated.add(n.used)
	target.changed()
	idx.membership.Add(1)
	if len(n.matches) > 1 {
		for _, p := range n.matches {
			p.overlapping++
		}
	}
}

func (idx *poolIndex) unassignLocked(name string, n *nodeEntry) {
	target := idx.unpooled
	if n.pool != nil {
		target = n.pool
	}
	target.nodes.Delete(name)
	target.capacity.sub(n.allocatable)
	target.allocated.sub(n.used)
	target.changed()
	idx.membership.Add(1)
	if len(n.matches) > 1 {
		for _, p := range n.matches {
			p.overlapping--
		}
	}
	n.pool, n.matches = nil, nil
}

func (idx *poolIndex) setNode(node *v1.Node) {
	alloc := idx.nodeAmounts(node)
	idx.mu.Lock()
	defer idx.mu.Unlock()
	n := idx.nodes[node.Name]
	switch {
	case n == nil:
		n = &nodeEntry{}
		idx.nodes[node.Name] = n
	case n.present && labels.Equals(n.labels, node.Labels) && n.allocatable == alloc:
		return
	}
	if n.present {
		idx.unassignLocked(node.Name, n)
	}
	n.present, n.labels, n.allocatable = true, labels.Set(node.Labels), alloc
	idx.assignLocked(node.Name, n)
	idx.version.Add(1)
}

func (idx *poolIndex) deleteNode(name string) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	n := idx.nodes[name]
	if n == nil || !n.present {
		return
	}
	idx.unassignLocked(name, n)
	n.present, n.labels, n.allocatable = false, nil, amounts{}
	if n.pods == 0 {
		delete(idx.nodes, name)
	}
	idx.version.Add(1)
}

// counted reports whether a pod takes capacity on a node.
func counted(pod *v1.Pod) bool {
	return pod != nil && pod.Spec.NodeName != "" && pod.Status.Phase != v1.PodSucceeded && pod.Status.Phase != v1.PodFailed
}

// updatePod moves a pod's requests from what old held to what cur holds (either may be nil).
func (idx *poolIndex) updatePod(old, cur *v1.Pod) {
	oldCounted, curCounted := counted(old), counted(cur)
	if !oldCounted && !curCounted {
		return
	}
	var oldAmounts, curAmounts amounts
	if oldCounted {
		oldAmounts = idx.podAmounts(old)
	}
	if curCounted {
		curAmounts = idx.podAmounts(cur)
	}
	if oldCounted && curCounted && old.Spec.NodeName == cur.Spec.NodeName && oldAmounts == curAmounts {
		return
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if oldCounted {
		idx.accountLocked(old.Spec.NodeName, oldAmounts, -1)
	}
	if curCounted {
		idx.accountLocked(cur.Spec.NodeName, curAmounts, 1)
	}
	idx.version.Add(1)
}

func (idx *poolIndex) accountLocked(nodeName string, a amounts, sign int) {
	n := idx.nodes[nodeName]
	if n == nil {
		n = &nodeEntry{}
		idx.nodes[nodeName] = n
	}
	target := idx.unpooled
	if n.pool != nil {
		target = n.pool
	}
	if sign > 0 {
		n.used.add(a)
		n.pods++
		if n.present {
			target.allocated.add(a)
		}
		return
	}
	n.used.sub(a)
	n.pods--
	if n.present {
		target.allocated.sub(a)
	}
	if n.pods <= 0 && !n.present {
		delete(idx.nodes, nodeName)
	}
}

// poolOf returns the pool a node belongs to, nil when it is in none.
func (idx *poolIndex) poolOf(nodeName string) *pool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	if n := idx.nodes[nodeName]; n != nil {
		return n.pool
	}
	return nil
}

// poolSummary is what a cycle and the status writer read of a pool.
type poolSummary struct {
	pool        *pool
	nodes       sets.Set[string]
	nodeCount   int
	capacity    amounts
	allocated   amounts
	overlapping int
}

// summaries returns every pool (invalid ones too, without nodes) and the unpooled nodes.
func (idx *poolIndex) summaries() (pools []poolSummary, unpooled poolSummary) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for _, p := range idx.pools {
		pools = append(pools, poolSummary{pool: p, nodes: p.nodeSet(), nodeCount: p.nodes.Len(),
			capacity: p.capacity, allocated: p.allocated, overlapping: p.overlapping})
	}
	u := idx.unpooled
	return pools, poolSummary{pool: u, nodes: u.nodeSet(), nodeCount: u.nodes.Len(), capacity: u.capacity, allocated: u.allocated}
}

// poolCount is how many pools exist, valid or not.
func (idx *poolIndex) poolCount() int {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return len(idx.pools)
}
