package topologyspread

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var (
	diffScale = flag.Int("topologyspread.scale", 1, "multiplies the differential test's case counts")
	diffSeed  = flag.Int64("topologyspread.seed", 0, "run only the differential case with this seed")
)

// The differential test runs upstream's PodTopologySpread and ours on the same randomized
// clusters, through the scheduler's real cache and snapshot, and demands identical statuses,
// scores and normalized scores on every node. Sequences carry both plugins across cycles while
// pods, labels and nodes change, so the index's incremental path is held to upstream too.

const (
	singleWorlds      = 4000 // one incoming pod each, index built from scratch
	sequenceWorlds    = 200
	stepsPerSequence  = 32 // each step: a random cluster change, then one compared pod
	incomingPerSingle = 1
	livingWorlds      = 40
	stepsPerLiving    = 40
)

func TestDifferentialSingleCycle(t *testing.T) {
	cases := 0
	for i := 0; i < singleWorlds**diffScale; i++ {
		seed := int64(1_000_000 + i)
		if *diffSeed != 0 && seed != *diffSeed {
			continue
		}
		w := newWorld(t, seed)
		for j := 0; j < incomingPerSingle; j++ {
			w.compare(t, w.randomIncoming())
			cases++
		}
		w.stop()
		if t.Failed() {
			t.Fatalf("seed %d diverged; rerun with -topologyspread.seed=%d", seed, seed)
		}
	}
	t.Logf("%d single-cycle cases agreed", cases)
	logCoverage(t)
}

func TestDifferentialSequences(t *testing.T) {
	cases := 0
	for i := 0; i < sequenceWorlds**diffScale; i++ {
		seed := int64(2_000_000 + i)
		if *diffSeed != 0 && seed != *diffSeed {
			continue
		}
		w := newWorld(t, seed)
		for step := 0; step < stepsPerSequence; step++ {
			w.mutate(t)
			pod := w.randomIncoming()
			feasible := w.compare(t, pod)
			if t.Failed() {
				t.Fatalf("seed %d diverged at step %d; rerun with -topologyspread.seed=%d", seed, step, seed)
			}
			if len(feasible) > 0 && w.rng.Intn(2) == 0 {
				w.place(t, pod, feasible[w.rng.Intn(len(feasible))])
			}
			cases++
		}
		w.stop()
	}
	t.Logf("%d sequence steps agreed", cases)
	logCoverage(t)
}

// TestDifferentialLivingCluster holds the index to upstream in a busy cluster: larger worlds,
// many selectors live at once, and several changes (status updates, pods coming and going,
// node churn) batched between two cycles, as 150 pods/s of churn produce.
func TestDifferentialLivingCluster(t *testing.T) {
	cases := 0
	for i := 0; i < livingWorlds**diffScale; i++ {
		seed := int64(3_000_000 + i)
		if *diffSeed != 0 && seed != *diffSeed {
			continue
		}
		rng := rand.New(rand.NewSource(seed))
		w := newWorldSized(t, seed, 20+rng.Intn(40))
		// Seconds between changes: selectors stay live for many cycles, and still go idle.
		w.maxClockStep = 10
		for step := 0; step < stepsPerLiving; step++ {
			w.mutateBatch(t, 1+w.rng.Intn(12))
			for range 2 {
				pod := w.randomIncoming()
				feasible := w.compare(t, pod)
				if t.Failed() {
					t.Fatalf("seed %d diverged at step %d; rerun with -topologyspread.seed=%d", seed, step, seed)
				}
				if len(feasible) > 0 && w.rng.Intn(3) == 0 {
					w.place(t, pod, feasible[w.rng.Intn(len(feasible))])
				}
				cases++
			}
		}
		w.stop()
	}
	t.Logf("%d living-cluster cycles agreed", cases)
	logCoverage(t)
	if coverage.domainsRecycled == 0 || coverage.cancelledBuilds == 0 || coverage.statusUpdates == 0 || coverage.maxLiveSelectors < 50 {
		t.Errorf("the living-cluster cases never exercised a path: %+v", coverage)
	}
}

// FuzzDifferential explores seeds, and the fuzzer's bytes steer the world's shape.
func FuzzDifferential(f *testing.F) {
	for _, s := range []int64{1, 2, 3, 42, 1_000_007} {
		f.Add(s, uint8(8), uint8(4))
	}
	f.Fuzz(func(t *testing.T, seed int64, nodes, steps uint8) {
		w := newWorldSized(t, seed, int(nodes%40)+1)
		for step := 0; step < int(steps%16)+1; step++ {
			w.mutate(t)
			pod := w.randomIncoming()
			feasible := w.compare(t, pod)
			if t.Failed() {
				t.Fatalf("seed %d nodes %d diverged at step %d", seed, nodes, step)
			}
			if len(feasible) > 0 {
				w.place(t, pod, feasible[w.rng.Intn(len(feasible))])
			}
		}
		w.stop()
	})
}

type world struct {
	ctx      context.Context
	cancel   context.CancelFunc
	logger   klog.Logger
	rng      *rand.Rand
	seed     int64
	cache    internalcache.Cache
	snapshot *internalcache.Snapshot
	upstream *podtopologyspread.PodTopologySpread
	ours     *IndexedPodTopologySpread
	nodes    []*v1.Node
	pods     []*v1.Pod // bound or assumed
	assumed  map[types.UID]bool
	nextID   int
	fts      feature.Features
	// clock moves minutes per step in sequences, so the index drops idle counts and rebuilds them.
	clock        *testingclock.FakeClock
	maxClockStep int // seconds per change
}

var (
	namespaces = []string{"ns1", "ns2"}
	zones      = []string{"z1", "z2", "z3"}
	labelKeys  = map[string][]string{"app": {"a", "b", "c"}, "tier": {"x", "y"}, "team": {"t1", "t2"}}
)

// controllers give pods default constraints: upstream derives their selector from these.
func controllers() []runtime.Object {
	return []runtime.Object{
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc-a", Namespace: "ns1"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "a"}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc-x", Namespace: "ns2"}, Spec: v1.ServiceSpec{Selector: map[string]string{"tier": "x"}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs-b", Namespace: "ns1"}, Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "b"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}},
		}}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ss-c", Namespace: "ns2"}, Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "c"}}}},
		&v1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc-c", Namespace: "ns1"}, Spec: v1.ReplicationControllerSpec{Selector: map[string]string{"app": "c"}}},
	}
}

func newWorld(t testing.TB, seed int64) *world {
	rng := rand.New(rand.NewSource(seed))
	return newWorldSized(t, seed, 1+rng.Intn(30))
}

func newWorldSized(t testing.TB, seed int64, numNodes int) *world {
	ctx, cancel := context.WithCancel(context.Background())
	logger := klog.Background()
	if tt, ok := t.(*testing.T); ok {
		logger, ctx = ktesting.NewTestContext(tt)
		ctx, cancel = context.WithCancel(ctx)
	}
	w := &world{ctx: ctx, cancel: cancel, logger: logger, rng: rand.New(rand.NewSource(seed)), seed: seed, assumed: map[types.UID]bool{}, maxClockStep: 240}
	w.cache = internalcache.New(ctx, nil, false, false)
	w.snapshot = internalcache.NewEmptySnapshot()
	w.fts = feature.Features{
		EnableNodeInclusionPolicyInPodTopologySpread: w.rng.Intn(5) != 0,
		EnableMatchLabelKeysInPodTopologySpread:      w.rng.Intn(5) != 0,
		EnableTaintTolerationComparisonOperators:     w.rng.Intn(2) == 0,
	}

	client := clientsetfake.NewClientset(controllers()...)
	factory := informers.NewSharedInformerFactory(client, 0)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(w.snapshot),
		frameworkruntime.WithInformerFactory(factory))
	if err != nil {
		t.Fatal(err)
	}
	args := w.randomArgs()
	up, err := podtopologyspread.New(ctx, args, fh, w.fts)
	if err != nil {
		t.Fatal(err)
	}
	w.upstream = up.(*podtopologyspread.PodTopologySpread)
	w.clock = testingclock.NewFakeClock(time.Unix(0, 0))
	w.ours, err = newPlugin(ctx, args, fh, w.fts, w.clock)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	for i := 0; i < numNodes; i++ {
		w.addNode()
	}
	for i, n := 0, w.rng.Intn(numNodes*6+1); i < n; i++ {
		w.addPod(t)
	}
	w.sync(t)
	return w
}

func (w *world) stop() {
	coverage.indexDrops += w.ours.index.stats.dropped
	coverage.domainsRecycled += w.ours.index.stats.domainsRecycled
	coverage.cancelledBuilds += w.ours.index.stats.buildsCancelled
	w.cancel()
}

func (w *world) randomArgs() *schedconfig.PodTopologySpreadArgs {
	switch w.rng.Intn(3) {
	case 0:
		return &schedconfig.PodTopologySpreadArgs{DefaultingType: schedconfig.SystemDefaulting}
	case 1:
		return &schedconfig.PodTopologySpreadArgs{DefaultingType: schedconfig.ListDefaulting, DefaultConstraints: []v1.TopologySpreadConstraint{
			{MaxSkew: 1, TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.DoNotSchedule},
			{MaxSkew: 2, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway},
		}}
	default:
		return &schedconfig.PodTopologySpreadArgs{DefaultingType: schedconfig.ListDefaulting}
	}
}

func (w *world) sync(t testing.TB) {
	if err := w.cache.UpdateSnapshot(w.logger, w.snapshot); err != nil {
		t.Fatalf("seed %d: UpdateSnapshot: %v", w.seed, err)
	}
}

func (w *world) pick(values []string) string { return values[w.rng.Intn(len(values))] }

func (w *world) randomNodeLabels(name string) map[string]string {
	l := map[string]string{}
	switch r := w.rng.Intn(20); {
	case r < 18:
		l[v1.LabelHostname] = name
	case r == 18 && len(w.nodes) > 0:
		l[v1.LabelHostname] = w.nodes[w.rng.Intn(len(w.nodes))].Labels[v1.LabelHostname]
	}
	if w.rng.Intn(8) != 0 {
		l[v1.LabelTopologyZone] = w.pick(zones)
	} else if w.rng.Intn(3) == 0 {
		l[v1.LabelTopologyZone] = ""
	}
	if w.rng.Intn(3) != 0 {
		l["region"] = w.pick([]string{"r1", "r2"})
	}
	if w.rng.Intn(2) == 0 {
		l["pool"] = w.pick([]string{"p1", "p2"})
	}
	return l
}

func (w *world) randomTaints() []v1.Taint {
	if w.rng.Intn(4) != 0 {
		return nil
	}
	effects := []v1.TaintEffect{v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute}
	if w.rng.Intn(3) == 0 {
		// A numeric taint, for tolerations with the Gt and Lt comparison operators.
		return []v1.Taint{{Key: "gpu-memory", Value: w.pick([]string{"16", "40", "80"}), Effect: effects[w.rng.Intn(len(effects))]}}
	}
	return []v1.Taint{{Key: "dedicated", Value: w.pick([]string{"a", "b"}), Effect: effects[w.rng.Intn(len(effects))]}}
}

func (w *world) addNode() {
	name := fmt.Sprintf("node-%d", w.nextID)
	w.nextID++
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), Labels: w.randomNodeLabels(name)}, Spec: v1.NodeSpec{Taints: w.randomTaints()}}
	w.nodes = append(w.nodes, n)
	w.cache.AddNode(w.logger, n)
}

func (w *world) randomPodLabels() map[string]string {
	l := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(labelKeys)) {
		values := labelKeys[k]
		if w.rng.Intn(3) != 0 {
			l[k] = w.pick(values)
		}
	}
	if w.rng.Intn(4) == 0 {
		l["pod-template-hash"] = w.pick([]string{"h1", "h2"})
	}
	return l
}

func (w *world) randomOwner(ns string) []metav1.OwnerReference {
	owners := map[string][]metav1.OwnerReference{
		"ns1": {{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-b"}, {APIVersion: "v1", Kind: "ReplicationController", Name: "rc-c"}},
		"ns2": {{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "ss-c"}},
	}
	if w.rng.Intn(2) == 0 {
		return nil
	}
	o := owners[ns][w.rng.Intn(len(owners[ns]))]
	o.Controller = ptr.To(true)
	return []metav1.OwnerReference{o}
}

func (w *world) newPod(prefix string) *v1.Pod {
	name := fmt.Sprintf("%s-%d", prefix, w.nextID)
	w.nextID++
	ns := w.pick(namespaces)
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: ns, UID: types.UID(name), Labels: w.randomPodLabels(), OwnerReferences: w.randomOwner(ns),
	}}
}

func (w *world) addPod(t testing.TB) {
	if len(w.nodes) == 0 {
		return
	}
	p := w.newPod("pod")
	p.Spec.NodeName = w.nodes[w.rng.Intn(len(w.nodes))].Name
	if w.rng.Intn(10) == 0 {
		p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	}
	if err := w.cache.AddPod(w.logger, p); err != nil {
		t.Fatalf("seed %d: AddPod: %v", w.seed, err)
	}
	w.pods = append(w.pods, p)
}

func (w *world) randomSelector() *metav1.LabelSelector {
	switch w.rng.Intn(20) {
	case 0:
		return nil
	case 1:
		return &metav1.LabelSelector{}
	}
	s := &metav1.LabelSelector{}
	for _, k := range slices.Sorted(maps.Keys(labelKeys)) {
		values := labelKeys[k]
		switch w.rng.Intn(6) {
		case 0, 1:
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[k] = w.pick(values)
		case 2:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{w.pick(values), w.pick(values)}})
		case 3:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: []string{w.pick(values)}})
		case 4:
			op := metav1.LabelSelectorOpExists
			if w.rng.Intn(3) == 0 {
				op = metav1.LabelSelectorOpDoesNotExist
			}
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: k, Operator: op})
		}
	}
	slices.SortFunc(s.MatchExpressions, func(a, b metav1.LabelSelectorRequirement) int {
		return cmpString(a.Key, b.Key)
	})
	return s
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *world) randomPolicy() *v1.NodeInclusionPolicy {
	switch w.rng.Intn(3) {
	case 0:
		return nil
	case 1:
		return ptr.To(v1.NodeInclusionPolicyHonor)
	}
	return ptr.To(v1.NodeInclusionPolicyIgnore)
}

func (w *world) randomIncoming() *v1.Pod {
	p := w.newPod("incoming")
	keys := []string{v1.LabelHostname, v1.LabelTopologyZone, v1.LabelTopologyZone, "region", "pool", "missing"}
	used := map[string]bool{}
	for i, n := 0, w.rng.Intn(4); i < n; i++ {
		key := w.pick(keys)
		when := v1.DoNotSchedule
		if w.rng.Intn(2) == 0 {
			when = v1.ScheduleAnyway
		}
		if used[key+string(when)] {
			continue
		}
		used[key+string(when)] = true
		c := v1.TopologySpreadConstraint{
			MaxSkew: int32(1 + w.rng.Intn(3)), TopologyKey: key, WhenUnsatisfiable: when,
			LabelSelector: w.randomSelector(), NodeAffinityPolicy: w.randomPolicy(), NodeTaintsPolicy: w.randomPolicy(),
		}
		if w.rng.Intn(3) == 0 {
			c.MinDomains = ptr.To(int32(1 + w.rng.Intn(5)))
		}
		if w.rng.Intn(4) == 0 {
			c.MatchLabelKeys = []string{w.pick([]string{"pod-template-hash", "tier"})}
		}
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	}
	if w.rng.Intn(4) == 0 {
		p.Spec.NodeSelector = map[string]string{"pool": w.pick([]string{"p1", "p2"})}
	}
	if w.rng.Intn(4) == 0 {
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
				{Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: []string{w.pick(zones), w.pick(zones)}},
			}}},
		}}}
	}
	if w.rng.Intn(6) == 0 {
		// A DaemonSet-style affinity naming nodes, some of which may not exist yet; as an extra
		// term it ORs with the term above, which makes the layout general again.
		names := []string{fmt.Sprintf("node-%d", w.rng.Intn(w.nextID+3))}
		if w.rng.Intn(2) == 0 {
			names = append(names, fmt.Sprintf("node-%d", w.rng.Intn(w.nextID+3)))
		}
		term := v1.NodeSelectorTerm{MatchFields: []v1.NodeSelectorRequirement{{Key: metav1.ObjectNameField, Operator: v1.NodeSelectorOpIn, Values: names}}}
		if p.Spec.Affinity == nil {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{}}}
		}
		req := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		req.NodeSelectorTerms = append(req.NodeSelectorTerms, term)
		coverage.namedAffinities++
	}
	if w.rng.Intn(3) == 0 {
		tol := v1.Toleration{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: w.pick([]string{"a", "b"}), Effect: v1.TaintEffectNoSchedule}
		if w.rng.Intn(2) == 0 {
			tol = v1.Toleration{Key: "dedicated", Operator: v1.TolerationOpExists}
		}
		p.Spec.Tolerations = []v1.Toleration{tol}
	}
	if w.rng.Intn(3) == 0 {
		op := v1.TolerationOpGt
		if w.rng.Intn(2) == 0 {
			op = v1.TolerationOpLt
		}
		p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: "gpu-memory", Operator: op, Value: w.pick([]string{"20", "60"})})
	}
	return p
}

// mutate makes one random change of the kind a cluster sees between scheduling cycles.
func (w *world) mutate(t testing.TB) {
	w.mutateUnsynced(t)
	w.sync(t)
}

// mutateBatch makes n changes before the snapshot is updated, as a busy cluster does between
// two cycles.
func (w *world) mutateBatch(t testing.TB, n int) {
	for range n {
		w.mutateUnsynced(t)
	}
	w.sync(t)
}

func (w *world) mutateUnsynced(t testing.TB) {
	w.clock.Step(time.Duration(w.rng.Intn(w.maxClockStep)) * time.Second)
	if w.rng.Intn(4) == 0 && len(w.pods) > 0 {
		// A kubelet status update: a new object with the same labels.
		i := w.rng.Intn(len(w.pods))
		if w.assumed[w.pods[i].UID] {
			return
		}
		old := w.pods[i]
		p := old.DeepCopy()
		p.Status.Phase = v1.PodRunning
		p.ResourceVersion = fmt.Sprint(w.nextID)
		w.nextID++
		if err := w.cache.UpdatePod(w.logger, old, p); err != nil {
			t.Fatalf("seed %d: status UpdatePod: %v", w.seed, err)
		}
		w.pods[i] = p
		coverage.statusUpdates++
		return
	}
	switch r := w.rng.Intn(20); {
	case r < 6:
		for i, n := 0, 1+w.rng.Intn(3); i < n; i++ {
			w.addPod(t)
		}
	case r < 9 && len(w.pods) > 0:
		i := w.rng.Intn(len(w.pods))
		p := w.pods[i]
		if w.assumed[p.UID] {
			if err := w.cache.ForgetPod(w.logger, p); err != nil {
				t.Fatalf("seed %d: ForgetPod: %v", w.seed, err)
			}
			delete(w.assumed, p.UID)
		} else if err := w.cache.RemovePod(w.logger, p); err != nil {
			t.Fatalf("seed %d: RemovePod: %v", w.seed, err)
		}
		w.pods = slices.Delete(w.pods, i, i+1)
	case r < 11 && len(w.pods) > 0:
		i := w.rng.Intn(len(w.pods))
		if w.assumed[w.pods[i].UID] {
			// The bind confirms the assumed pod.
			if err := w.cache.AddPod(w.logger, w.pods[i]); err != nil {
				t.Fatalf("seed %d: confirm AddPod: %v", w.seed, err)
			}
			delete(w.assumed, w.pods[i].UID)
			return
		}
		old := w.pods[i]
		p := old.DeepCopy()
		if w.rng.Intn(3) == 0 {
			p.DeletionTimestamp = &metav1.Time{Time: time.Unix(2, 0)}
		} else {
			p.Labels = w.randomPodLabels()
		}
		if err := w.cache.UpdatePod(w.logger, old, p); err != nil {
			t.Fatalf("seed %d: UpdatePod: %v", w.seed, err)
		}
		w.pods[i] = p
	case r < 13 && len(w.nodes) > 0:
		i := w.rng.Intn(len(w.nodes))
		old := w.nodes[i]
		n := old.DeepCopy()
		if w.rng.Intn(2) == 0 {
			n.Labels = w.randomNodeLabels(n.Name)
		} else {
			n.Spec.Taints = w.randomTaints()
		}
		w.cache.UpdateNode(w.logger, old, n)
		w.nodes[i] = n
	case r < 15:
		w.addNode()
	case r < 16 && len(w.nodes) > 1:
		i := w.rng.Intn(len(w.nodes))
		n := w.nodes[i]
		for j := len(w.pods) - 1; j >= 0; j-- {
			if p := w.pods[j]; p.Spec.NodeName == n.Name {
				if w.assumed[p.UID] {
					_ = w.cache.ForgetPod(w.logger, p)
					delete(w.assumed, p.UID)
				} else if err := w.cache.RemovePod(w.logger, p); err != nil {
					t.Fatalf("seed %d: RemovePod: %v", w.seed, err)
				}
				w.pods = slices.Delete(w.pods, j, j+1)
			}
		}
		if err := w.cache.RemoveNode(w.logger, n); err != nil {
			t.Fatalf("seed %d: RemoveNode: %v", w.seed, err)
		}
		w.nodes = slices.Delete(w.nodes, i, i+1)
	}
}

// place assumes pod on node, as the scheduler does at the end of a cycle.
func (w *world) place(t testing.TB, pod *v1.Pod, node string) {
	pod.Spec.NodeName = node
	if err := w.cache.AssumePod(w.logger, pod); err != nil {
		t.Fatalf("seed %d: AssumePod: %v", w.seed, err)
	}
	w.assumed[pod.UID] = true
	w.pods = append(w.pods, pod)
	w.sync(t)
}

// coverage counts what the random cases exercised, so a run shows it compared more than Skips.
var coverage struct {
	preFilterRan, filterRejected, filterUnresolvable, preemptionChecks, preScoreRan, scoresCompared int
	statusUpdates, clonesOfClones, parallelFilters, cancelledCycles, namedAffinities                int
	indexDrops, domainsRecycled, cancelledBuilds, maxLiveSelectors                                  int64
}

func logCoverage(t *testing.T) {
	c := coverage
	t.Logf("PreFilter ran %d, Filter rejected %d (missing label %d), preemption dry runs %d (clones of clones %d, parallel Filter runs %d), PreScore ran %d, scores compared %d",
		c.preFilterRan, c.filterRejected, c.filterUnresolvable, c.preemptionChecks, c.clonesOfClones, c.parallelFilters, c.preScoreRan, c.scoresCompared)
	t.Logf("status updates %d, cancelled cycles %d (builds discarded %d), node-naming affinities %d, index drops %d, domain ids recycled %d, most live selectors %d",
		c.statusUpdates, c.cancelledCycles, c.cancelledBuilds, c.namedAffinities, c.indexDrops, c.domainsRecycled, c.maxLiveSelectors)
	if c.filterRejected == 0 || c.preemptionChecks == 0 || c.scoresCompared == 0 || c.clonesOfClones == 0 || c.parallelFilters == 0 {
		t.Errorf("the random cases never exercised a path: %+v", c)
	}
}

type statusView struct {
	Code    fwk.Code
	Reasons []string
}

func view(s *fwk.Status) statusView {
	if s == nil {
		return statusView{Code: fwk.Success}
	}
	return statusView{Code: s.Code(), Reasons: s.Reasons()}
}

// compare runs both plugins on pod and reports every difference; it returns the nodes both
// found feasible.
func (w *world) compare(t testing.TB, pod *v1.Pod) []string {
	t.Helper()
	ctx := w.ctx
	nodes, err := w.snapshot.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d, pod %s/%s %v, inclusion policies %v, matchLabelKeys %v: %s", w.seed, pod.Namespace, pod.Name, pod.Spec.TopologySpreadConstraints,
			w.fts.EnableNodeInclusionPolicyInPodTopologySpread, w.fts.EnableMatchLabelKeysInPodTopologySpread, fmt.Sprintf(format, args...))
	}

	coverage.maxLiveSelectors = max(coverage.maxLiveSelectors, int64(len(w.ours.index.selectors)))
	if w.rng.Intn(8) == 0 {
		w.cancelledCycle(t, pod, nodes)
	}
	stateUp, stateOurs := framework.NewCycleState(), framework.NewCycleState()
	_, sUp := w.upstream.PreFilter(ctx, stateUp, pod, nodes)
	_, sOurs := w.ours.PreFilter(ctx, stateOurs, pod, nodes)
	if d := cmp.Diff(view(sUp), view(sOurs)); d != "" {
		fail("PreFilter status (-upstream +ours):\n%s", d)
		return nil
	}
	var feasible []string
	if sUp.IsSuccess() {
		coverage.preFilterRan++
		for _, ni := range nodes {
			fu := w.upstream.Filter(ctx, stateUp, pod, ni)
			fo := w.ours.Filter(ctx, stateOurs, pod, ni)
			if d := cmp.Diff(view(fu), view(fo)); d != "" {
				fail("Filter on %s (-upstream +ours):\n%s", ni.Node().Name, d)
			}
			switch fu.Code() {
			case fwk.Success:
				feasible = append(feasible, ni.Node().Name)
			case fwk.Unschedulable:
				coverage.filterRejected++
			case fwk.UnschedulableAndUnresolvable:
				coverage.filterUnresolvable++
			}
		}
		w.comparePreemption(t, pod, stateUp, stateOurs, nodes, fail)
	} else {
		feasible = nodeNames(nodes)
	}

	// Score a random subset, as if other filters had dropped some nodes.
	var filtered []fwk.NodeInfo
	for _, ni := range nodes {
		if w.rng.Intn(5) != 0 {
			filtered = append(filtered, ni)
		}
	}
	sUp = w.upstream.PreScore(ctx, stateUp, pod, filtered)
	sOurs = w.ours.PreScore(ctx, stateOurs, pod, filtered)
	if d := cmp.Diff(view(sUp), view(sOurs)); d != "" {
		fail("PreScore status (-upstream +ours):\n%s", d)
		return feasible
	}
	if !sUp.IsSuccess() {
		return feasible
	}
	coverage.preScoreRan++
	coverage.scoresCompared += len(filtered)
	var scoresUp, scoresOurs fwk.NodeScoreList
	for _, ni := range filtered {
		su, stu := w.upstream.Score(ctx, stateUp, pod, ni)
		so, sto := w.ours.Score(ctx, stateOurs, pod, ni)
		if d := cmp.Diff(view(stu), view(sto)); d != "" || su != so {
			fail("Score on %s: upstream %d %v, ours %d %v", ni.Node().Name, su, stu, so, sto)
		}
		scoresUp = append(scoresUp, fwk.NodeScore{Name: ni.Node().Name, Score: su})
		scoresOurs = append(scoresOurs, fwk.NodeScore{Name: ni.Node().Name, Score: so})
	}
	nu := w.upstream.NormalizeScore(ctx, stateUp, pod, scoresUp)
	no := w.ours.NormalizeScore(ctx, stateOurs, pod, scoresOurs)
	if d := cmp.Diff(view(nu), view(no)); d != "" {
		fail("NormalizeScore status (-upstream +ours):\n%s", d)
	}
	if d := cmp.Diff(scoresUp, scoresOurs); d != "" {
		fail("NormalizeScore (-upstream +ours):\n%s", d)
	}
	return feasible
}

// comparePreemption removes and re-adds pods of one node on cloned states, as preemption's
// dry run does, and compares Filter on every node after each change.
func (w *world) comparePreemption(t testing.TB, pod *v1.Pod, stateUp, stateOurs fwk.CycleState, nodes []fwk.NodeInfo, fail func(string, ...any)) {
	if len(nodes) == 0 || w.rng.Intn(3) != 0 {
		return
	}
	ctx := w.ctx
	coverage.preemptionChecks++
	target := nodes[w.rng.Intn(len(nodes))]
	if w.rng.Intn(5) == 0 {
		// A node the snapshot does not list yet: its domain may be new to the counts.
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "unlisted", Labels: w.randomNodeLabels("unlisted")}}
		n.Labels[v1.LabelTopologyZone] = "z-new"
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		target = ni
	}
	cu, co := stateUp.Clone(), stateOurs.Clone()
	check := func(what string) {
		for _, ni := range nodes {
			fu := w.upstream.Filter(ctx, cu, pod, ni)
			fo := w.ours.Filter(ctx, co, pod, ni)
			if d := cmp.Diff(view(fu), view(fo)); d != "" {
				fail("Filter on %s after %s on %s (-upstream +ours):\n%s", ni.Node().Name, what, target.Node().Name, d)
			}
		}
	}
	victims := target.GetPods()
	for _, p := range victims {
		if w.rng.Intn(2) == 0 {
			continue
		}
		if d := cmp.Diff(view(w.upstream.RemovePod(ctx, cu, pod, p, target)), view(w.ours.RemovePod(ctx, co, pod, p, target))); d != "" {
			fail("RemovePod status: %s", d)
		}
		check("RemovePod " + p.GetPod().Name)
	}
	// A nominated pod of the incoming pod's namespace lands on the node.
	nominated := w.newPod("nominated")
	nominated.Namespace = pod.Namespace
	pi, _ := framework.NewPodInfo(nominated)
	for i := 0; i < 1+w.rng.Intn(2); i++ {
		if d := cmp.Diff(view(w.upstream.AddPod(ctx, cu, pod, pi, target)), view(w.ours.AddPod(ctx, co, pod, pi, target))); d != "" {
			fail("AddPod status: %s", d)
		}
		check("AddPod " + nominated.Name)
	}
	w.compareClonesOfClones(t, pod, cu, co, nodes, target, fail)
	w.compareParallelFilter(t, pod, stateUp, stateOurs, nodes, fail)
	// The original states must be untouched by the clones.
	for _, ni := range nodes {
		if d := cmp.Diff(view(w.upstream.Filter(ctx, stateUp, pod, ni)), view(w.ours.Filter(ctx, stateOurs, pod, ni))); d != "" {
			fail("Filter on %s on the original state after preemption (-upstream +ours):\n%s", ni.Node().Name, d)
		}
	}
}

func nodeNames(nodes []fwk.NodeInfo) []string {
	names := make([]string, 0, len(nodes))
	for _, ni := range nodes {
		names = append(names, ni.Node().Name)
	}
	return names
}

// cancelledCycle runs our PreFilter and PreScore for pod under a context that has ended, as a
// cycle interrupted by shutdown would: an error is allowed, a panic or a kept count is not (the
// comparison that follows would see it).
func (w *world) cancelledCycle(t testing.TB, pod *v1.Pod, nodes []fwk.NodeInfo) {
	ctx, cancel := context.WithCancel(w.ctx)
	cancel()
	coverage.cancelledCycles++
	for _, s := range []*fwk.Status{
		func() *fwk.Status { _, s := w.ours.PreFilter(ctx, framework.NewCycleState(), pod, nodes); return s }(),
		w.ours.PreScore(ctx, framework.NewCycleState(), pod, nodes),
	} {
		if s.Code() == fwk.Error && !errors.Is(s.AsError(), context.Canceled) {
			t.Errorf("seed %d: cancelled cycle: %v, want success, skip or context.Canceled", w.seed, s)
		}
	}
}

// compareClonesOfClones clones the dry-run states again, as preemption does when it evaluates
// victims on a state that already holds nominated pods, and checks both generations.
func (w *world) compareClonesOfClones(t testing.TB, pod *v1.Pod, cu, co fwk.CycleState, nodes []fwk.NodeInfo, target fwk.NodeInfo, fail func(string, ...any)) {
	ctx := w.ctx
	coverage.clonesOfClones++
	before := make([]statusView, len(nodes))
	for i, ni := range nodes {
		before[i] = view(w.ours.Filter(ctx, co, pod, ni))
	}
	cu2, co2 := cu.Clone(), co.Clone()
	extra := w.newPod("nominated2")
	extra.Namespace = pod.Namespace
	extra.Labels = pod.Labels
	pi, _ := framework.NewPodInfo(extra)
	if d := cmp.Diff(view(w.upstream.AddPod(ctx, cu2, pod, pi, target)), view(w.ours.AddPod(ctx, co2, pod, pi, target))); d != "" {
		fail("AddPod on a clone of a clone: %s", d)
	}
	if victims := target.GetPods(); len(victims) > 0 {
		v := victims[w.rng.Intn(len(victims))]
		if d := cmp.Diff(view(w.upstream.RemovePod(ctx, cu2, pod, v, target)), view(w.ours.RemovePod(ctx, co2, pod, v, target))); d != "" {
			fail("RemovePod on a clone of a clone: %s", d)
		}
	}
	for i, ni := range nodes {
		if d := cmp.Diff(view(w.upstream.Filter(ctx, cu2, pod, ni)), view(w.ours.Filter(ctx, co2, pod, ni))); d != "" {
			fail("Filter on %s on a clone of a clone (-upstream +ours):\n%s", ni.Node().Name, d)
		}
		if d := cmp.Diff(before[i], view(w.ours.Filter(ctx, co, pod, ni))); d != "" {
			fail("Filter on %s on the first clone changed when its clone was written:\n%s", ni.Node().Name, d)
		}
	}
}

// compareParallelFilter runs our Filter from several goroutines at once, each on its own clone
// holding a different nominated pod, as preemption's parallel dry runs do (run under -race).
func (w *world) compareParallelFilter(t testing.TB, pod *v1.Pod, stateUp, stateOurs fwk.CycleState, nodes []fwk.NodeInfo, fail func(string, ...any)) {
	ctx := w.ctx
	const workers = 4
	coverage.parallelFilters++
	want := make([][]statusView, workers)
	clones := make([]fwk.CycleState, workers)
	targets := make([]fwk.NodeInfo, workers)
	infos := make([]fwk.PodInfo, workers)
	for i := range workers {
		target := nodes[w.rng.Intn(len(nodes))]
		nominated := w.newPod("parallel")
		nominated.Namespace = pod.Namespace
		pi, _ := framework.NewPodInfo(nominated)
		cu := stateUp.Clone()
		w.upstream.AddPod(ctx, cu, pod, pi, target)
		want[i] = make([]statusView, len(nodes))
		for j, ni := range nodes {
			want[i][j] = view(w.upstream.Filter(ctx, cu, pod, ni))
		}
		// Our AddPod runs in the goroutine: it writes the clone's own overlay only.
		clones[i] = stateOurs.Clone()
		targets[i], infos[i] = target, pi
	}
	got := make([][]statusView, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.ours.AddPod(ctx, clones[i], pod, infos[i], targets[i])
			got[i] = make([]statusView, len(nodes))
			for j, ni := range nodes {
				got[i][j] = view(w.ours.Filter(ctx, clones[i], pod, ni))
			}
		}()
	}
	wg.Wait()
	for i := range workers {
		if d := cmp.Diff(want[i], got[i]); d != "" {
			fail("parallel Filter on clone %d (-upstream +ours):\n%s", i, d)
		}
	}
}
