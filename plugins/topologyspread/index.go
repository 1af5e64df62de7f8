package topologyspread

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
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
)

// spreadIndex keeps, across scheduling cycles, how many pods each selector matches on each node
// and per topology domain. It follows the scheduler's snapshot: a node is recounted only when
// its NodeInfo generation changed since the last cycle, which includes assumed pods.
//
// All writes happen under mu in PreFilter and PreScore. Filter and Score read the counts
// without the lock: the framework runs them after PreFilter/PreScore of the same cycle and
// before the next cycle starts.
type spreadIndex struct {
	mu    sync.Mutex
	clock clock.PassiveClock
	// parallelizer spreads a new selector's first count (a walk over every pod) over the
	// scheduler's workers, as upstream spreads its per-cycle walk.
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
	changed    []*nodeSlot

	selectors map[string]*selectorCounts
	// countedPods is the sum of the selectors' pods, kept for the metrics.
	countedPods int64
	// byNamespace lists the selectors of each namespace, so a recount matches each pod only
	// against selectors of its own namespace.
	byNamespace map[string][]*selectorCounts
	aggregates  map[string]*domainCounts
	// domainTables are keyed by topology key.
	domainTables map[string]*domainTable
	lastSweep    time.Time

	stats indexStats
}

// indexStats are cumulative; metrics read them.
type indexStats struct {
	nodesRecounted                  int64
	selectorBuilds, aggregateBuilds int64
	dropped                         int64
}

type nodeSlot struct {
	id   int32
	name string
	info fwk.NodeInfo
	// node is the Node object last counted; while it is unchanged only pod counts can move.
	node       *v1.Node
	generation int64
	seen       uint64
}

// selectorCounts counts the pods a selector matches in one namespace, per node.
type selectorCounts struct {
	key       string
	namespace string
	selector  labels.Selector
	// countsNothing mirrors upstream: an empty selector counts no pods.
	countsNothing bool
	perNode       []int32 // by slot id
	pods          int64
	scratch       int64 // recountNode's tally
	aggregates    []*domainCounts
	lastUsed      time.Time
}

// domainTable interns the values of one topology key, so that the domain tables of many
// selectors (7,500 hostnames each, for a hostname key) share one map of names.
type domainTable struct {
	id    map[string]int32
	names []string
}

func (t *domainTable) intern(value string) int32 {
	id, ok := t.id[value]
	if !ok {
		id = int32(len(t.names))
		t.id[value] = id
		t.names = append(t.names, value)
	}
	return id
}

// domainCounts sums a selector's per-node counts by topology domain, over the nodes that a
// constraint counts (required topology keys present, node filter passed).
type domainCounts struct {
	key          string
	sel          *selectorCounts
	topologyKey  string
	requiredKeys []string // nil: nodes without topologyKey count in domain ""
	filter       nodeFilter

	nodeDomain []int32 // by slot id; -1 when the node is not counted
	// table names the domains of topologyKey; it is shared by every table of that key.
	table *domainTable
	pods  []int64 // matching pods by domain id
	nodes []int32 // counted nodes by domain id
	// domains is the number of domain ids with nodes > 0, i.e. upstream's len(TpValueToMatchNum).
	domains int
	// histogram maps a pod count to the number of domains with that count, for the minimum.
	histogram map[int64]int32
	minPods   int64
	minValid  bool
	lastUsed  time.Time
}

func newSpreadIndex(clk clock.PassiveClock, enableComparisonOperators bool, parallelizer fwk.Parallelizer) *spreadIndex {
	return &spreadIndex{
		clock:                     clk,
		parallelizer:              parallelizer,
		enableComparisonOperators: enableComparisonOperators,
		byName:                    map[string]*nodeSlot{},
		selectors:                 map[string]*selectorCounts{},
		byNamespace:               map[string][]*selectorCounts{},
		aggregates:                map[string]*domainCounts{},
		domainTables:              map[string]*domainTable{},
		lastSweep:                 clk.Now(),
	}
}

// sync brings the counts up to date with nodes, the full NodeInfo list of this cycle's
// snapshot. It costs O(len(nodes)) pointer comparisons plus a recount of changed nodes.
func (idx *spreadIndex) sync(logger klog.Logger, nodes []fwk.NodeInfo) {
	start := time.Now()
	defer func() { syncDuration.Observe(time.Since(start).Seconds()) }()
	idx.epoch++
	if cap(idx.positional) < len(nodes) {
		idx.positional = slices.Grow(idx.positional[:0], len(nodes))
	}
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
				idx.removeSlot(s)
			}
		}
	}
	for _, s := range idx.changed {
		idx.recountNode(logger, s)
	}
	idx.stats.nodesRecounted += int64(len(idx.changed))
	clear(idx.changed)
	idx.maybeSweep()
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
	s := &nodeSlot{id: id, name: name, generation: math.MinInt64}
	idx.slots[id] = s
	idx.byName[name] = s
	return s
}

func (idx *spreadIndex) removeSlot(s *nodeSlot) {
	for _, sc := range idx.selectors {
		old := sc.count(s.id)
		for _, a := range sc.aggregates {
			a.move(s.id, -1, old, 0)
		}
		idx.countedPods += sc.setCount(s.id, 0)
	}
	delete(idx.byName, s.name)
	idx.slots[s.id] = nil
	idx.freeSlots = append(idx.freeSlots, s.id)
}

func (idx *spreadIndex) recountNode(logger klog.Logger, s *nodeSlot) {
	node := s.info.Node()
	nodeChanged := node != s.node
	s.node = node
	for _, sc := range idx.selectors {
		sc.scratch = 0
	}
	// Upstream's countPodsMatchSelector, for all selectors in one pass over the node's pods.
	for _, p := range s.info.GetPods() {
		pod := p.GetPod()
		if pod.DeletionTimestamp != nil {
			continue
		}
		set := labels.Set(pod.Labels)
		for _, sc := range idx.byNamespace[pod.Namespace] {
			if !sc.countsNothing && sc.selector.Matches(set) {
				sc.scratch++
			}
		}
	}
	for _, sc := range idx.selectors {
		old := sc.count(s.id)
		for _, a := range sc.aggregates {
			domain := a.domainOfSlot(s.id)
			if nodeChanged {
				domain = a.domainOf(logger, node, idx.enableComparisonOperators)
			}
			a.move(s.id, domain, old, sc.scratch)
		}
		idx.countedPods += sc.setCount(s.id, sc.scratch)
	}
}

// selectorFor returns the counts for selector in namespace, building them (O(pods)) on first use.
func (idx *spreadIndex) selectorFor(ctx context.Context, namespace string, selector labels.Selector) *selectorCounts {
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
		return sc
	}
	sc := &selectorCounts{
		key:           key,
		namespace:     namespace,
		selector:      selector,
		countsNothing: countsNothing,
		perNode:       make([]int32, len(idx.slots)),
		lastUsed:      now,
	}
	if !countsNothing {
		// Each worker writes only its own slots' entries.
		idx.parallelizer.Until(ctx, len(idx.slots), func(i int) {
			if s := idx.slots[i]; s != nil {
				sc.perNode[i] = int32(sc.countOn(s.info.GetPods()))
			}
		}, Name)
		for _, n := range sc.perNode {
			sc.pods += int64(n)
		}
		idx.countedPods += sc.pods
	}
	idx.selectors[key] = sc
	idx.byNamespace[namespace] = append(idx.byNamespace[namespace], sc)
	idx.stats.selectorBuilds++
	return sc
}

// aggregateFor returns the domain counts for one constraint, building them (O(nodes)) on first use.
func (idx *spreadIndex) aggregateFor(ctx context.Context, logger klog.Logger, namespace string, selector labels.Selector, topologyKey string, requiredKeys []string, filter nodeFilter) *domainCounts {
	sc := idx.selectorFor(ctx, namespace, selector)
	var b strings.Builder
	b.WriteString(sc.key)
	b.WriteByte(0)
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
	if a, ok := idx.aggregates[key]; ok {
		a.lastUsed = now
		return a
	}
	a := &domainCounts{
		key:          key,
		sel:          sc,
		topologyKey:  topologyKey,
		requiredKeys: requiredKeys,
		filter:       filter,
		table:        idx.tableFor(topologyKey),
		lastUsed:     now,
	}
	a.reset()
	idx.fill(logger, a)
	sc.aggregates = append(sc.aggregates, a)
	idx.aggregates[key] = a
	idx.stats.aggregateBuilds++
	return a
}

func (idx *spreadIndex) tableFor(topologyKey string) *domainTable {
	t := idx.domainTables[topologyKey]
	if t == nil {
		t = &domainTable{id: map[string]int32{}}
		idx.domainTables[topologyKey] = t
	}
	return t
}

func (idx *spreadIndex) fill(logger klog.Logger, a *domainCounts) {
	for _, s := range idx.slots {
		if s != nil {
			a.move(s.id, a.domainOf(logger, s.info.Node(), idx.enableComparisonOperators), 0, a.sel.count(s.id))
		}
	}
}

// maybeSweep drops counts that no pod has used for idleTTL and compacts domain tables that
// node churn has filled with empty domains.
func (idx *spreadIndex) maybeSweep() {
	now := idx.clock.Now()
	if now.Sub(idx.lastSweep) < sweepInterval {
		return
	}
	idx.lastSweep = now
	for key, a := range idx.aggregates {
		if now.Sub(a.lastUsed) > idleTTL {
			delete(idx.aggregates, key)
			a.sel.aggregates = slices.DeleteFunc(a.sel.aggregates, func(x *domainCounts) bool { return x == a })
			idx.stats.dropped++
		}
	}
	// A key's names outgrow its live domains when nodes come and go (hostnames); start the
	// key's table afresh and refill its domain tables.
	used := map[string]bool{}
	for _, a := range idx.aggregates {
		used[a.topologyKey] = true
	}
	for topologyKey, t := range idx.domainTables {
		if !used[topologyKey] {
			delete(idx.domainTables, topologyKey)
			continue
		}
		if len(t.names) <= 2*len(idx.byName)+64 {
			continue
		}
		delete(idx.domainTables, topologyKey)
		fresh := idx.tableFor(topologyKey)
		for _, a := range idx.aggregates {
			if a.topologyKey == topologyKey {
				a.table = fresh
				a.reset()
				idx.fill(klog.Background(), a)
			}
		}
	}
	for key, sc := range idx.selectors {
		if len(sc.aggregates) == 0 && now.Sub(sc.lastUsed) > idleTTL {
			delete(idx.selectors, key)
			idx.countedPods -= sc.pods
			idx.byNamespace[sc.namespace] = slices.DeleteFunc(idx.byNamespace[sc.namespace], func(x *selectorCounts) bool { return x == sc })
			if len(idx.byNamespace[sc.namespace]) == 0 {
				delete(idx.byNamespace, sc.namespace)
			}
			idx.stats.dropped++
		}
	}
}

// slotOf returns the slot id of a node synced in this cycle, or -1.
func (idx *spreadIndex) slotOf(name string) int32 {
	if s, ok := idx.byName[name]; ok {
		return s.id
	}
	return -1
}

func (sc *selectorCounts) countOn(pods []fwk.PodInfo) int64 {
	if sc.countsNothing {
		return 0
	}
	return int64(countPodsMatchSelector(pods, sc.selector, sc.namespace))
}

func (sc *selectorCounts) count(id int32) int64 {
	if int(id) < len(sc.perNode) {
		return int64(sc.perNode[id])
	}
	return 0
}

// setCount sets a node's count and returns the change in the selector's total.
func (sc *selectorCounts) setCount(id int32, n int64) int64 {
	if int(id) >= len(sc.perNode) {
		if n == 0 {
			return 0
		}
		sc.perNode = append(sc.perNode, make([]int32, int(id)+1-len(sc.perNode))...)
	}
	delta := n - int64(sc.perNode[id])
	sc.pods += delta
	sc.perNode[id] = int32(n)
	return delta
}

func (a *domainCounts) reset() {
	a.nodeDomain = nil
	a.pods = nil
	a.nodes = nil
	a.domains = 0
	a.histogram = map[int64]int32{}
	a.minValid = false
}

// domainOf returns the domain id node counts in, or -1 when the constraint does not count it.
// The checks are upstream's: required affinity, all topology keys present, untolerated taints.
func (a *domainCounts) domainOf(logger klog.Logger, node *v1.Node, enableComparisonOperators bool) int32 {
	if a.filter.affinity != nil {
		if match, _ := a.filter.affinity.Match(node); !match {
			return -1
		}
	}
	for _, k := range a.requiredKeys {
		if _, ok := node.Labels[k]; !ok {
			return -1
		}
	}
	if a.filter.tolerations != nil {
		if _, untolerated := v1helper.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, a.filter.tolerations, helper.DoNotScheduleTaintsFilterFunc(), enableComparisonOperators); untolerated {
			return -1
		}
	}
	id := a.table.intern(node.Labels[a.topologyKey])
	if n := len(a.table.names); len(a.pods) < n {
		a.pods = append(a.pods, make([]int64, n-len(a.pods))...)
		a.nodes = append(a.nodes, make([]int32, n-len(a.nodes))...)
	}
	return id
}

func (a *domainCounts) domainOfSlot(id int32) int32 {
	if int(id) < len(a.nodeDomain) {
		return a.nodeDomain[id]
	}
	return -1
}

// move changes one node's contribution from (its current domain, oldCount) to (domain, count).
func (a *domainCounts) move(id, domain int32, oldCount, count int64) {
	old := a.domainOfSlot(id)
	if old == domain && oldCount == count {
		return
	}
	if old >= 0 {
		a.change(old, -oldCount, -1)
	}
	if domain >= 0 {
		a.change(domain, count, 1)
	}
	if int(id) >= len(a.nodeDomain) {
		if domain < 0 {
			return
		}
		for int(id) >= len(a.nodeDomain) {
			a.nodeDomain = append(a.nodeDomain, -1)
		}
	}
	a.nodeDomain[id] = domain
}

func (a *domainCounts) change(d int32, pods int64, nodes int32) {
	if a.nodes[d] > 0 {
		a.histogramRemove(a.pods[d])
		a.domains--
	}
	a.pods[d] += pods
	a.nodes[d] += nodes
	if a.nodes[d] > 0 {
		a.histogramAdd(a.pods[d])
		a.domains++
	}
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

// minimum returns the smallest pod count over counted domains, or MaxInt32 when there are none
// (upstream's initial critical path).
func (a *domainCounts) minimum() int {
	if a.domains == 0 {
		return math.MaxInt32
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
	id, ok := a.table.id[value]
	if !ok || int(id) >= len(a.nodes) || a.nodes[id] == 0 {
		return 0, false
	}
	return int(a.pods[id]), true
}
