package topologyspread

import (
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	"k8s.io/utils/clock"
)

const (
	// idleTTL drops counts no pod has asked for in this long. Unschedulable pods are retried at
	// least every 5 minutes, so counts a pending pod needs are rarely rebuilt.
	idleTTL = 10 * time.Minute
	// sweepInterval bounds how often the index looks for idle counts.
	sweepInterval = 30 * time.Second
	// parallelBuildMin is the number of pods from which a new selector is counted in parallel.
	parallelBuildMin = 8192
)

// spreadIndex keeps, across scheduling cycles, how many pods each selector matches on each node
// and per topology domain. It follows the scheduler's snapshot: a node whose NodeInfo
// generation moved is diffed against the pods recorded for it, and only pods that appeared,
// left, changed labels or started terminating are matched against the selectors of their
// namespace. A kubelet status update changes the generation but no label, so it costs a diff of
// that node's pods and nothing per selector.
//
// The counts are kept in three layers:
//   - selectorCounts: matching pods per node, for a namespace and selector;
//   - layout: which nodes a constraint counts and the domain each belongs to, for a topology
//     key, the required keys and the node filter (affinity, tolerations); shared by selectors;
//   - domainCounts: a selector's pods per domain of one layout, with a histogram for the minimum.
//
// Every map holds non-zero entries only, so memory follows the pods and nodes that matter, not
// the size of the cluster. Domain ids are reference-counted and recycled when no node is left in
// a domain, so node churn never requires a rebuild.
//
// All writes happen under mu in PreFilter, PreScore and the idle sweep. Filter and Score read
// the counts without the lock: the framework runs them after PreFilter/PreScore of the same
// cycle and before the next cycle starts, and the sweep only drops counts idle for idleTTL.
type spreadIndex struct {
	mu    sync.Mutex
	clock clock.PassiveClock
	// parallelizer spreads a new selector's first count over the scheduler's workers.
	parallelizer fwk.Parallelizer
	// enableComparisonOperators is passed to the taint matcher, as upstream does.
	enableComparisonOperators bool

	slots     []*nodeSlot // by slot id; nil when free
	freeSlots []int32
	byName    map[string]*nodeSlot
	// positional[i] is the slot of the i-th NodeInfo in the last list synced: the snapshot's
	// list keeps its order and pointers between cycles, so most nodes need no map lookup.
	positional []*nodeSlot
	epoch      uint64
	mark       uint64 // diffPods' visit mark
	changed    []*nodeSlot

	namespaces map[string]*namespacePods
	selectors  map[string]*selectorCounts
	layouts    map[string]*layout
	// general lists the layouts that may count any node; named[node] those whose node
	// affinity names that node (DaemonSet pods), so a node change touches only its own.
	general    []*layout
	named      map[string][]*layout
	aggregates map[aggregateKey]*domainCounts
	// domainTables are keyed by topology key.
	domainTables  map[string]*domainTable
	lastSweep     time.Time
	lastIdleSweep time.Time

	size  indexSize
	stats indexStats
}

// indexStats are cumulative; metrics read them.
type indexStats struct {
	nodesRecounted                  int64
	podChanges                      int64
	selectorBuilds, aggregateBuilds int64
	layoutBuilds                    int64
	dropped                         int64
	domainsRecycled                 int64
	buildsCancelled                 int64
}

// indexSize counts the entries the index holds, for the memory estimate.
type indexSize struct {
	pods            int64 // pod records
	nodeCounts      int64 // selectorCounts.perNode entries
	domainCounts    int64 // domainCounts.pods entries
	layoutMembers   int64 // layout.domainOf entries
	countedPods     int64 // sum of the selectors' pods
	selectorIndexes int64 // label-index entries
}

// Approximate heap bytes per entry, measured with the micro benchmark's retained heap: a map
// entry costs about twice its key and value once buckets and growth slack are counted.
const (
	bytesPerPodRecord   = 80 // record, its map entry by UID, its place in the namespace list
	bytesPerIntEntry    = 24 // int32 -> int32/int64 map entry
	bytesPerDomainName  = 48
	bytesPerIndexEntry  = 16
	bytesPerCountHolder = 400 // each selectorCounts, layout, domainCounts and its empty maps
)

func (s indexSize) bytes(domainNames int64, holders int) int64 {
	return s.pods*bytesPerPodRecord + (s.nodeCounts+s.domainCounts+2*s.layoutMembers)*bytesPerIntEntry +
		domainNames*bytesPerDomainName + s.selectorIndexes*bytesPerIndexEntry + int64(holders)*bytesPerCountHolder
}

type nodeSlot struct {
	id   int32
	name string
	info fwk.NodeInfo
	// node is the Node object last applied to the layouts; while its labels and taints are
	// unchanged only pod counts can move.
	node       *v1.Node
	generation int64
	seen       uint64
	pods       map[types.UID]*podRecord
}

// podRecord is a pod as last counted on a node.
type podRecord struct {
	pod  *v1.Pod
	slot int32
	// nsIndex is the record's position in its namespace's list, -1 while the pod is not
	// counted (terminating).
	nsIndex int32
	mark    uint64
}

// namespacePods lists a namespace's counted pods and its selectors, indexed by one label each
// requires, so a pod change is matched only against selectors it can match.
type namespacePods struct {
	name      string
	pods      []*podRecord
	byLabel   map[string]map[string][]*selectorCounts
	unindexed []*selectorCounts
	selectors int
}

// selectorCounts counts the pods a selector matches in one namespace, per node.
type selectorCounts struct {
	key       string
	namespace string
	selector  labels.Selector
	// countsNothing mirrors upstream: an empty selector counts no pods.
	countsNothing bool
	// indexKey and indexValues place the selector in its namespace's label index; indexKey is
	// "" when no requirement is an equality or set membership.
	indexKey    string
	indexValues []string
	perNode     map[int32]int32 // slot id -> matching pods, non-zero only
	pods        int64
	aggregates  []*domainCounts
	lastUsed    time.Time
}

// domainTable interns the values of one topology key, so that the layouts of that key share
// one map of names. Ids are reference-counted by layout memberships and reused when free.
type domainTable struct {
	id    map[string]int32
	names []string
	refs  []int32
	free  []int32
	users int // layouts of this key
}

func (t *domainTable) acquire(value string) int32 {
	id, ok := t.id[value]
	if !ok {
		if n := len(t.free); n > 0 {
			id = t.free[n-1]
			t.free = t.free[:n-1]
			t.names[id] = value
		} else {
			id = int32(len(t.names))
			t.names = append(t.names, value)
			t.refs = append(t.refs, 0)
		}
		t.id[value] = id
	}
	t.refs[id]++
	return id
}

// release drops one reference and reports whether the id was freed.
func (t *domainTable) release(id int32) bool {
	if t.refs[id]--; t.refs[id] > 0 {
		return false
	}
	delete(t.id, t.names[id])
	t.names[id] = ""
	t.free = append(t.free, id)
	return true
}

// layout is the set of nodes one kind of constraint counts and the domain of each: nodes
// carrying the required topology keys and passing the node filter, by the value of topologyKey.
type layout struct {
	key          string
	topologyKey  string
	requiredKeys []string // nil: nodes without topologyKey count in domain ""
	filter       nodeFilter
	table        *domainTable
	domainOf     map[int32]int32 // slot id -> domain id, members only
	nodes        map[int32]int32 // domain id -> member nodes
	aggregates   []*domainCounts
	lastUsed     time.Time
}

type aggregateKey struct {
	sel    *selectorCounts
	layout *layout
}

// domainCounts sums a selector's per-node counts by the domains of one layout.
type domainCounts struct {
	sel    *selectorCounts
	layout *layout
	pods   map[int32]int64 // domain id -> matching pods, non-zero only
	// histogram maps a non-zero pod count to the number of domains with that count.
	histogram map[int64]int32
	minPods   int64
	minValid  bool
	lastUsed  time.Time
	dropped   bool
}

func newSpreadIndex(clk clock.PassiveClock, enableComparisonOperators bool, parallelizer fwk.Parallelizer) *spreadIndex {
	return &spreadIndex{
		clock:                     clk,
		parallelizer:              parallelizer,
		enableComparisonOperators: enableComparisonOperators,
		byName:                    map[string]*nodeSlot{},
		namespaces:                map[string]*namespacePods{},
		selectors:                 map[string]*selectorCounts{},
		layouts:                   map[string]*layout{},
		named:                     map[string][]*layout{},
		aggregates:                map[aggregateKey]*domainCounts{},
		domainTables:              map[string]*domainTable{},
		lastSweep:                 clk.Now(),
	}
}

// sync brings the counts up to date with nodes, the full NodeInfo list of this cycle's
// snapshot. It costs O(len(nodes)) pointer comparisons, a diff of each changed node's pods, and
// per pod that really changed a match against the selectors indexed under its labels.
func (idx *spreadIndex) sync(logger klog.Logger, nodes []fwk.NodeInfo) {
	start := time.Now()
	defer func() { syncDuration.Observe(time.Since(start).Seconds()) }()
	idx.epoch++
	if cap(idx.positional) < len(nodes) {
		idx.positional = slices.Grow(idx.positional[:0], len(nodes))
	}
	// Entries past the list would keep removed nodes' slots alive.
	clear(idx.positional[len(nodes):cap(idx.positional)])
	idx.positional = idx.positional[:len(nodes)]
	idx.changed = idx.changed[:0]
	seen := 0
	for i, ni := range nodes {
		// Fast path: the same NodeInfo as last cycle, unchanged.
		if s := idx.positional[i]; s != nil && s.info == ni && s.generation == ni.GetGeneration() && s.seen != idx.epoch {
			s.seen = idx.epoch
			seen++
			continue
		}
		node := ni.Node()
		if node == nil {
			idx.positional[i] = nil
			continue
		}
		s := idx.positional[i]
		if s == nil || s.info != ni || (s.generation != ni.GetGeneration() && s.name != node.Name) {
			s = idx.byName[node.Name]
			if s == nil {
				s = idx.newSlot(node.Name)
			}
			idx.positional[i] = s
		}
		if s.seen == idx.epoch {
			continue
		}
		s.seen = idx.epoch
		seen++
		if s.info != ni || s.generation != ni.GetGeneration() {
			s.info = ni
			s.generation = ni.GetGeneration()
			idx.changed = append(idx.changed, s)
		}
	}
	if len(idx.byName) > seen {
		for _, s := range idx.slots {
			if s != nil && s.seen != idx.epoch {
				idx.removeSlot(logger, s)
			}
		}
	}
	for _, s := range idx.changed {
		if node := s.info.Node(); nodeLayoutChanged(s.node, node) {
			idx.relayout(logger, s, node)
		}
		s.node = s.info.Node()
		idx.diffPods(s, s.info.GetPods())
	}
	idx.stats.nodesRecounted += int64(len(idx.changed))
	clear(idx.changed)
	idx.maybeSweep()
}

// nodeLayoutChanged reports whether anything a layout reads (labels, taints) differs.
func nodeLayoutChanged(old, node *v1.Node) bool {
	if old == node {
		return false
	}
	if old == nil || node == nil {
		return true
	}
	return !maps.Equal(old.Labels, node.Labels) || !slices.EqualFunc(old.Spec.Taints, node.Spec.Taints, func(a, b v1.Taint) bool {
		return a.Key == b.Key && a.Value == b.Value && a.Effect == b.Effect
	})
}

func (idx *spreadIndex) newSlot(name string) *nodeSlot {
	var id int32
	if n := len(idx.freeSlots); n > 0 {
		id = idx.freeSlots[n-1]
		idx.freeSlots = idx.freeSlots[:n-1]
	} else {
		id = int32(len(idx.slots))
		idx.slots = append(idx.slots, nil)
	}
	s := &nodeSlot{id: id, name: name, generation: math.MinInt64, pods: map[types.UID]*podRecord{}}
	idx.slots[id] = s
	idx.byName[name] = s
	return s
}

func (idx *spreadIndex) removeSlot(logger klog.Logger, s *nodeSlot) {
	idx.diffPods(s, nil)
	idx.relayout(logger, s, nil)
	delete(idx.byName, s.name)
	idx.slots[s.id] = nil
	idx.freeSlots = append(idx.freeSlots, s.id)
	// The snapshot may still hold the NodeInfo; the index must not.
	s.info, s.node = nil, nil
}

// diffPods brings the slot's pod records in line with pods and counts what changed.
func (idx *spreadIndex) diffPods(s *nodeSlot, pods []fwk.PodInfo) {
	idx.mark++
	mark := idx.mark
	for _, pi := range pods {
		pod := pi.GetPod()
		key := recordKey(pod)
		rec := s.pods[key]
		if rec != nil && rec.pod == pod {
			rec.mark = mark
			continue
		}
		counted := pod.DeletionTimestamp == nil
		if rec == nil {
			rec = &podRecord{pod: pod, slot: s.id, nsIndex: -1}
			s.pods[key] = rec
			idx.size.pods++
		} else if rec.nsIndex >= 0 && (!counted || rec.pod.Namespace != pod.Namespace || !maps.Equal(rec.pod.Labels, pod.Labels)) {
			idx.uncountPod(rec)
		}
		rec.pod = pod
		rec.mark = mark
		if counted && rec.nsIndex < 0 {
			idx.countPod(rec)
		}
	}
	if len(s.pods) == len(pods) {
		return
	}
	for uid, rec := range s.pods {
		if rec.mark != mark {
			if rec.nsIndex >= 0 {
				idx.uncountPod(rec)
			}
			delete(s.pods, uid)
			idx.size.pods--
		}
	}
}

// recordKey is the pod's UID, or its namespace and name for pods built without one (tests).
func recordKey(pod *v1.Pod) types.UID {
	if pod.UID != "" {
		return pod.UID
	}
	return types.UID("\x00" + pod.Namespace + "/" + pod.Name)
}

func (idx *spreadIndex) namespace(name string) *namespacePods {
	ns := idx.namespaces[name]
	if ns == nil {
		ns = &namespacePods{name: name, byLabel: map[string]map[string][]*selectorCounts{}}
		idx.namespaces[name] = ns
	}
	return ns
}

func (idx *spreadIndex) releaseNamespace(ns *namespacePods) {
	if len(ns.pods) == 0 && ns.selectors == 0 {
		delete(idx.namespaces, ns.name)
	}
}

func (idx *spreadIndex) countPod(rec *podRecord) {
	ns := idx.namespace(rec.pod.Namespace)
	rec.nsIndex = int32(len(ns.pods))
	ns.pods = append(ns.pods, rec)
	idx.applyPod(ns, rec.pod.Labels, rec.slot, 1)
}

func (idx *spreadIndex) uncountPod(rec *podRecord) {
	ns := idx.namespaces[rec.pod.Namespace]
	idx.applyPod(ns, rec.pod.Labels, rec.slot, -1)
	last := len(ns.pods) - 1
	moved := ns.pods[last]
	ns.pods[rec.nsIndex] = moved
	moved.nsIndex = rec.nsIndex
	ns.pods[last] = nil
	ns.pods = ns.pods[:last]
	rec.nsIndex = -1
	idx.releaseNamespace(ns)
}

// applyPod adds delta to every selector of ns that matches podLabels, on slot.
func (idx *spreadIndex) applyPod(ns *namespacePods, podLabels map[string]string, slot int32, delta int32) {
	idx.stats.podChanges++
	if ns.selectors == 0 {
		return
	}
	set := labels.Set(podLabels)
	for k, v := range podLabels {
		for _, sc := range ns.byLabel[k][v] {
			if sc.selector.Matches(set) {
				idx.bump(sc, slot, delta)
			}
		}
	}
	for _, sc := range ns.unindexed {
		if sc.selector.Matches(set) {
			idx.bump(sc, slot, delta)
		}
	}
}

func (idx *spreadIndex) bump(sc *selectorCounts, slot int32, delta int32) {
	n := sc.perNode[slot] + delta
	if n == 0 {
		delete(sc.perNode, slot)
		idx.size.nodeCounts--
	} else {
		if n == delta {
			idx.size.nodeCounts++
		}
		sc.perNode[slot] = n
	}
	sc.pods += int64(delta)
	idx.size.countedPods += int64(delta)
	for _, a := range sc.aggregates {
		if d, ok := a.layout.domainOf[slot]; ok {
			idx.addToDomain(a, d, int64(delta))
		}
	}
}

// relayout re-evaluates the slot's membership and domain in every layout that can count it,
// moving each selector's count on the slot with it. node is nil when the node is gone.
func (idx *spreadIndex) relayout(logger klog.Logger, s *nodeSlot, node *v1.Node) {
	for _, l := range idx.general {
		idx.place(logger, l, s, node)
	}
	for _, l := range idx.named[s.name] {
		idx.place(logger, l, s, node)
	}
}

// place sets the slot's domain in l from node (nil: not counted).
func (idx *spreadIndex) place(logger klog.Logger, l *layout, s *nodeSlot, node *v1.Node) {
	old, wasMember := l.domainOf[s.id]
	value, member := l.evaluate(logger, node, idx.enableComparisonOperators)
	if wasMember && member && l.table.names[old] == value {
		return
	}
	nd := int32(-1)
	if member {
		nd = l.table.acquire(value)
	}
	for _, a := range l.aggregates {
		if c := int64(a.sel.perNode[s.id]); c != 0 {
			if wasMember {
				idx.addToDomain(a, old, -c)
			}
			if member {
				idx.addToDomain(a, nd, c)
			}
		}
	}
	if wasMember {
		idx.leave(l, s.id, old)
	}
	if member {
		l.domainOf[s.id] = nd
		l.nodes[nd]++
		idx.size.layoutMembers++
	}
}

// leave removes slot from l's domain d; the domain's id is freed when no layout uses it.
func (idx *spreadIndex) leave(l *layout, slot, d int32) {
	delete(l.domainOf, slot)
	idx.size.layoutMembers--
	if l.nodes[d]--; l.nodes[d] == 0 {
		delete(l.nodes, d)
	}
	if l.table.release(d) {
		idx.stats.domainsRecycled++
	}
}

func (idx *spreadIndex) totalDomainNames() int64 {
	var n int64
	for _, t := range idx.domainTables {
		n += int64(len(t.id))
	}
	return n
}

// evaluate returns the node's domain value and whether the layout counts the node. The checks
// are upstream's: required affinity, all topology keys present, untolerated taints.
func (l *layout) evaluate(logger klog.Logger, node *v1.Node, enableComparisonOperators bool) (string, bool) {
	if node == nil {
		return "", false
	}
	if l.filter.affinity != nil {
		if match, _ := l.filter.affinity.Match(node); !match {
			return "", false
		}
	}
	for _, k := range l.requiredKeys {
		if _, ok := node.Labels[k]; !ok {
			return "", false
		}
	}
	if l.filter.tolerations != nil {
		if _, untolerated := v1helper.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, l.filter.tolerations, helper.DoNotScheduleTaintsFilterFunc(), enableComparisonOperators); untolerated {
			return "", false
		}
	}
	return node.Labels[l.topologyKey], true
}

// selectorFor returns the counts for selector in namespace, building them on first use from the
// namespace's pods. A build interrupted by ctx is discarded and its error returned.
func (idx *spreadIndex) selectorFor(ctx context.Context, namespace string, selector labels.Selector) (*selectorCounts, error) {
	countsNothing := selector.Empty()
	var key string
	if countsNothing {
		key = namespace + "\x00\x01"
	} else {
		key = namespace + "\x00" + selector.String()
	}
	now := idx.clock.Now()
	if sc, ok := idx.selectors[key]; ok {
		sc.lastUsed = now
		return sc, nil
	}
	sc := &selectorCounts{
		key:           key,
		namespace:     namespace,
		selector:      selector,
		countsNothing: countsNothing,
		perNode:       map[int32]int32{},
		lastUsed:      now,
	}
	if !countsNothing {
		if ns := idx.namespaces[namespace]; ns != nil {
			idx.countNamespace(ctx, sc, ns.pods)
		}
		if err := ctx.Err(); err != nil {
			idx.stats.buildsCancelled++
			return nil, err
		}
		idx.size.nodeCounts += int64(len(sc.perNode))
		idx.size.countedPods += sc.pods
		idx.register(sc)
	}
	idx.selectors[key] = sc
	idx.stats.selectorBuilds++
	return sc, nil
}

// countNamespace fills sc.perNode from pods, in parallel pieces for large namespaces.
func (idx *spreadIndex) countNamespace(ctx context.Context, sc *selectorCounts, pods []*podRecord) {
	count := func(part []*podRecord, into map[int32]int32) int64 {
		var n int64
		for _, rec := range part {
			if sc.selector.Matches(labels.Set(rec.pod.Labels)) {
				into[rec.slot]++
				n++
			}
		}
		return n
	}
	if len(pods) < parallelBuildMin {
		sc.pods = count(pods, sc.perNode)
		return
	}
	pieces := (len(pods) + parallelBuildMin - 1) / parallelBuildMin
	parts := make([]map[int32]int32, pieces)
	totals := make([]int64, pieces)
	idx.parallelizer.Until(ctx, pieces, func(i int) {
		parts[i] = map[int32]int32{}
		totals[i] = count(pods[i*parallelBuildMin:min(len(pods), (i+1)*parallelBuildMin)], parts[i])
	}, Name)
	for i, part := range parts {
		for slot, n := range part {
			sc.perNode[slot] += n
		}
		sc.pods += totals[i]
	}
}

// register places sc in its namespace's label index under the requirement with fewest values.
func (idx *spreadIndex) register(sc *selectorCounts) {
	ns := idx.namespace(sc.namespace)
	ns.selectors++
	if reqs, ok := sc.selector.Requirements(); ok {
		for _, r := range reqs {
			switch r.Operator() {
			case selection.Equals, selection.DoubleEquals, selection.In:
				// Values() is deduplicated: a value listed twice must not count a pod twice.
				if vals := r.Values(); sc.indexKey == "" || vals.Len() < len(sc.indexValues) {
					sc.indexKey, sc.indexValues = r.Key(), vals.List()
				}
			}
		}
	}
	if sc.indexKey == "" {
		ns.unindexed = append(ns.unindexed, sc)
		idx.size.selectorIndexes++
		return
	}
	byValue := ns.byLabel[sc.indexKey]
	if byValue == nil {
		byValue = map[string][]*selectorCounts{}
		ns.byLabel[sc.indexKey] = byValue
	}
	for _, v := range sc.indexValues {
		byValue[v] = append(byValue[v], sc)
	}
	idx.size.selectorIndexes += int64(len(sc.indexValues))
}

func (idx *spreadIndex) unregister(sc *selectorCounts) {
	ns := idx.namespaces[sc.namespace]
	ns.selectors--
	isSC := func(x *selectorCounts) bool { return x == sc }
	if sc.indexKey == "" {
		ns.unindexed = slices.DeleteFunc(ns.unindexed, isSC)
		idx.size.selectorIndexes--
	} else {
		byValue := ns.byLabel[sc.indexKey]
		for _, v := range sc.indexValues {
			if byValue[v] = slices.DeleteFunc(byValue[v], isSC); len(byValue[v]) == 0 {
				delete(byValue, v)
			}
		}
		if len(byValue) == 0 {
			delete(ns.byLabel, sc.indexKey)
		}
		idx.size.selectorIndexes -= int64(len(sc.indexValues))
	}
	idx.releaseNamespace(ns)
}

// layoutFor returns the layout for a constraint's topology key, required keys and node filter,
// building it on first use: O(nodes), or O(named nodes) when the affinity names its nodes.
func (idx *spreadIndex) layoutFor(logger klog.Logger, topologyKey string, requiredKeys []string, filter nodeFilter) *layout {
	var b strings.Builder
	b.WriteString(topologyKey)
	b.WriteByte(0)
	if requiredKeys == nil {
		b.WriteByte(2)
	}
	for _, k := range requiredKeys {
		b.WriteString(k)
		b.WriteByte(1)
	}
	b.WriteByte(0)
	b.WriteString(filter.key)
	key := b.String()
	now := idx.clock.Now()
	if l, ok := idx.layouts[key]; ok {
		l.lastUsed = now
		return l
	}
	l := &layout{
		key:          key,
		topologyKey:  topologyKey,
		requiredKeys: requiredKeys,
		filter:       filter,
		table:        idx.tableFor(topologyKey),
		domainOf:     map[int32]int32{},
		nodes:        map[int32]int32{},
		lastUsed:     now,
	}
	l.table.users++
	if filter.names != nil {
		for _, name := range filter.names {
			idx.named[name] = append(idx.named[name], l)
			if s := idx.byName[name]; s != nil {
				idx.place(logger, l, s, s.node)
			}
		}
	} else {
		idx.general = append(idx.general, l)
		for _, s := range idx.slots {
			if s != nil {
				idx.place(logger, l, s, s.node)
			}
		}
	}
	idx.layouts[key] = l
	idx.stats.layoutBuilds++
	return l
}

// aggregateFor returns the domain counts for one constraint: O(nodes the selector matches, or
// the layout's members if fewer) on first use, O(1) after.
func (idx *spreadIndex) aggregateFor(ctx context.Context, logger klog.Logger, namespace string, selector labels.Selector, topologyKey string, requiredKeys []string, filter nodeFilter) (*domainCounts, error) {
	sc, err := idx.selectorFor(ctx, namespace, selector)
	if err != nil {
		return nil, err
	}
	l := idx.layoutFor(logger, topologyKey, requiredKeys, filter)
	now := idx.clock.Now()
	if a, ok := idx.aggregates[aggregateKey{sc, l}]; ok {
		a.lastUsed = now
		return a, nil
	}
	a := &domainCounts{sel: sc, layout: l, pods: map[int32]int64{}, histogram: map[int64]int32{}, lastUsed: now}
	if len(l.domainOf) < len(sc.perNode) {
		for slot, d := range l.domainOf {
			if c := sc.perNode[slot]; c != 0 {
				idx.addToDomain(a, d, int64(c))
			}
		}
	} else {
		for slot, c := range sc.perNode {
			if d, ok := l.domainOf[slot]; ok {
				idx.addToDomain(a, d, int64(c))
			}
		}
	}
	sc.aggregates = append(sc.aggregates, a)
	l.aggregates = append(l.aggregates, a)
	idx.aggregates[aggregateKey{sc, l}] = a
	idx.stats.aggregateBuilds++
	return a, nil
}

func (idx *spreadIndex) tableFor(topologyKey string) *domainTable {
	t := idx.domainTables[topologyKey]
	if t == nil {
		t = &domainTable{id: map[string]int32{}}
		idx.domainTables[topologyKey] = t
	}
	return t
}

func (idx *spreadIndex) addToDomain(a *domainCounts, d int32, delta int64) {
	old := a.pods[d]
	n := old + delta
	if old != 0 {
		a.histogramRemove(old)
	}
	if n != 0 {
		if old == 0 {
			idx.size.domainCounts++
		}
		a.pods[d] = n
		a.histogramAdd(n)
	} else if old != 0 {
		delete(a.pods, d)
		idx.size.domainCounts--
	}
}

// sweepIdle runs the idle sweep outside a scheduling cycle. A Filter or Score may be reading
// the layouts and domain tables without the lock meanwhile, so it drops only selectors and
// domain counts, which no running cycle reads (a cycle marks what it uses in PreFilter and
// PreScore); layouts and their domain ids are released by the next cycle's sweep.
func (idx *spreadIndex) sweepIdle() {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	now := idx.clock.Now()
	if now.Sub(idx.lastIdleSweep) < sweepInterval {
		return
	}
	idx.lastIdleSweep = now
	idx.sweep(now, false)
	publishFigures(idx)
}

// maybeSweep drops counts that no pod has used for idleTTL, at most once per sweepInterval.
// It runs in PreFilter and PreScore, where no Filter or Score of the profile runs.
func (idx *spreadIndex) maybeSweep() {
	now := idx.clock.Now()
	if now.Sub(idx.lastSweep) < sweepInterval {
		return
	}
	idx.lastSweep = now
	idx.sweep(now, true)
}

// sweep's work is linear in what it drops plus the number of domain counts and layouts.
func (idx *spreadIndex) sweep(now time.Time, layouts bool) {
	touched := map[*selectorCounts]bool{}
	touchedLayouts := map[*layout]bool{}
	for key, a := range idx.aggregates {
		if now.Sub(a.lastUsed) > idleTTL {
			delete(idx.aggregates, key)
			a.dropped = true
			idx.size.domainCounts -= int64(len(a.pods))
			touched[a.sel] = true
			touchedLayouts[a.layout] = true
			idx.stats.dropped++
		}
	}
	isDropped := func(a *domainCounts) bool { return a.dropped }
	for sc := range touched {
		sc.aggregates = slices.DeleteFunc(sc.aggregates, isDropped)
	}
	for l := range touchedLayouts {
		l.aggregates = slices.DeleteFunc(l.aggregates, isDropped)
	}
	var droppedLayouts bool
	for key, l := range idx.layouts {
		if layouts && len(l.aggregates) == 0 && now.Sub(l.lastUsed) > idleTTL {
			idx.dropLayout(l)
			delete(idx.layouts, key)
			droppedLayouts = true
			idx.stats.dropped++
		}
	}
	if droppedLayouts {
		idx.general = slices.DeleteFunc(idx.general, func(l *layout) bool { return idx.layouts[l.key] != l })
	}
	for key, sc := range idx.selectors {
		if len(sc.aggregates) == 0 && now.Sub(sc.lastUsed) > idleTTL {
			delete(idx.selectors, key)
			idx.size.countedPods -= sc.pods
			idx.size.nodeCounts -= int64(len(sc.perNode))
			if !sc.countsNothing {
				idx.unregister(sc)
			}
			idx.stats.dropped++
		}
	}
}

// dropLayout releases l's domain ids; the caller removes it from idx.layouts and idx.general.
func (idx *spreadIndex) dropLayout(l *layout) {
	for slot, d := range l.domainOf {
		idx.leave(l, slot, d)
	}
	for _, name := range l.filter.names {
		if idx.named[name] = slices.DeleteFunc(idx.named[name], func(x *layout) bool { return x == l }); len(idx.named[name]) == 0 {
			delete(idx.named, name)
		}
	}
	if l.table.users--; l.table.users == 0 {
		delete(idx.domainTables, l.topologyKey)
	}
}

// slotOf returns the slot id of a node synced in this cycle, or -1.
func (idx *spreadIndex) slotOf(name string) int32 {
	if s, ok := idx.byName[name]; ok {
		return s.id
	}
	return -1
}

func (sc *selectorCounts) count(id int32) int64 {
	return int64(sc.perNode[id])
}

func (a *domainCounts) histogramAdd(v int64) {
	a.histogram[v]++
	if a.minValid && v < a.minPods {
		a.minPods = v
	}
}

func (a *domainCounts) histogramRemove(v int64) {
	if a.histogram[v]--; a.histogram[v] == 0 {
		delete(a.histogram, v)
		if v == a.minPods {
			a.minValid = false
		}
	}
}

// domains is upstream's len(TpValueToMatchNum): domains with at least one counted node.
func (a *domainCounts) domains() int {
	return len(a.layout.nodes)
}

// minimum returns the smallest pod count over counted domains, or MaxInt32 when there are none
// (upstream's initial critical path). Every domain with pods has nodes, so when more domains
// have nodes than pods, some domain has none.
func (a *domainCounts) minimum() int {
	if len(a.layout.nodes) == 0 {
		return math.MaxInt32
	}
	if len(a.layout.nodes) > len(a.pods) {
		return 0
	}
	if !a.minValid {
		first := true
		for v := range a.histogram {
			if first || v < a.minPods {
				a.minPods = v
				first = false
			}
		}
		a.minValid = true
	}
	return int(a.minPods)
}

// podsIn returns the matching pods in the domain named value, and whether that domain is counted.
func (a *domainCounts) podsIn(value string) (int, bool) {
	id, ok := a.layout.table.id[value]
	if !ok || a.layout.nodes[id] == 0 {
		return 0, false
	}
	return int(a.pods[id]), true
}

// forEachDomain calls f for every counted domain with its matching pods.
func (a *domainCounts) forEachDomain(f func(value string, pods int)) {
	for id := range a.layout.nodes {
		f(a.layout.table.names[id], int(a.pods[id]))
	}
}
