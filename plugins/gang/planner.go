package gang

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/tierhint"
)

// planningState marks a cycle state run by the planner: our PreFilter then only applies the
// reservations of other gangs, captured when planning started.
type planningState struct {
	gang     string
	reserved map[string]*framework.Resource
}

// planOptions says how wide a plan may look.
type planOptions struct {
	// allTiers plans over every TeamPool tier a member may use, not only its best one.
	allTiers bool
}

func (s *planningState) Clone() fwk.StateData { return s }

// memberSpec is one distinct member spec of a gang: its members share Filter verdicts.
type memberSpec struct {
	key     uint64
	rep     *v1.Pod
	state   *framework.CycleState
	req     *framework.Resource
	members int
	// candidates are the nodes PreFilter left (all nodes unless a plugin narrowed them).
	candidates []fwk.NodeInfo
	// feasible indexes candidates that passed Filter on the snapshot, tightest fit first.
	feasible []int
	// reasons counts why the other candidates failed.
	reasons map[string]int
	placed  int
	// narrowed is set when a PreFilter plugin (TeamPool's tiers, say) left only some nodes.
	narrowed bool
	// interPod is set when placing members can make new nodes feasible for this spec
	// (required pod affinity, hard spreading), so a failed search looks at every candidate.
	interPod bool
}

// specKey hashes what scheduling reads from a pod, so members with equal keys get equal
// verdicts: labels, our annotations and the spec without its per-pod names.
func specKey(pod *v1.Pod) uint64 {
	spec := pod.Spec.DeepCopy()
	spec.NodeName, spec.Hostname = "", ""
	ann := map[string]string{}
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, "workbench.dev/") {
			ann[k] = v
		}
	}
	b, _ := json.Marshal(struct {
		NS     string
		Labels map[string]string
		Ann    map[string]string
		Spec   *v1.PodSpec
	}{pod.Namespace, pod.Labels, ann, spec})
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

func podRequest(pod *v1.Pod) *framework.Resource {
	return framework.NewResource(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

// size orders members for placement: the scarcest resources first, so big members are not
// left without a node by small ones.
func size(r *framework.Resource) (scalar, cpu, mem int64) {
	for _, v := range r.ScalarResources {
		scalar += v
	}
	return scalar, r.MilliCPU, r.Memory
}

// plan finds a node for each of pods (the members to place) on the current snapshot, or
// returns the reason there is none. reserved is other gangs' held capacity by node.
func (pl *Gang) plan(ctx context.Context, gangKey string, pods []*v1.Pod, reserved map[string]*framework.Resource, opts planOptions) (_ *plan, reason string, narrowed bool, _ error) {
	snapshot := pl.handle.SnapshotSharedLister().NodeInfos()
	specs := map[uint64]*memberSpec{}
	var order []*memberSpec
	memberSpecs := make([]*memberSpec, len(pods))
	for i, pod := range pods {
		k := specKey(pod)
		s := specs[k]
		if s == nil {
			s = &memberSpec{key: k, rep: pod, req: podRequest(pod), reasons: map[string]int{}}
			specs[k] = s
			order = append(order, s)
		}
		s.members++
		memberSpecs[i] = s
	}
	for _, s := range order {
		reason, err := pl.filterSpec(ctx, gangKey, s, snapshot, reserved, opts)
		narrowed = narrowed || s.narrowed
		if reason != "" || err != nil {
			return nil, reason, narrowed, err
		}
	}

	// Biggest members first; members of one spec stay together.
	idx := make([]int, len(pods))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		sa, ca, ma := size(memberSpecs[idx[a]].req)
		sb, cb, mb := size(memberSpecs[idx[b]].req)
		if sa != sb {
			return sa > sb
		}
		if ca != cb {
			return ca > cb
		}
		return ma > mb
	})

	p := &plan{allTiers: opts.allTiers}
	touched := map[string]fwk.NodeInfo{}
	var used []string
	for _, i := range idx {
		pod, s := pods[i], memberSpecs[i]
		node, err := pl.placeMember(ctx, pod, s, touched, used)
		if err != nil {
			return nil, "", narrowed, err
		}
		if node == nil {
			return nil, bottleneck(gangKey, s), narrowed, nil
		}
		name := node.Node().Name
		if touched[name] == nil {
			used = append(used, name)
			node = node.Snapshot()
		}
		placedPod := pod.DeepCopy()
		placedPod.Spec.NodeName = name
		pi, err := framework.NewPodInfo(placedPod)
		if err != nil {
			return nil, "", narrowed, err
		}
		node.AddPodInfo(pi)
		touched[name] = node
		for _, t := range order {
			if st := pl.handle.RunPreFilterExtensionAddPod(ctx, t.state, t.rep, pi, node); !st.IsSuccess() {
				return nil, "", narrowed, fmt.Errorf("adding planned member %s to node %s: %w", pod.Name, name, st.AsError())
			}
		}
		s.placed++
		p.slots = append(p.slots, &slot{node: name, spec: s.key, req: s.req})
	}
	return p, "", narrowed, nil
}

// filterSpec runs the profile's PreFilter and Filter plugins for one member spec on every
// candidate node, in parallel, and orders the feasible ones tightest first.
func (pl *Gang) filterSpec(ctx context.Context, gangKey string, s *memberSpec, snapshot fwk.NodeInfoLister, reserved map[string]*framework.Resource, opts planOptions) (string, error) {
	s.state = framework.NewCycleState()
	s.state.Write(planningKey, &planningState{gang: gangKey, reserved: reserved})
	if opts.allTiers {
		tierhint.SetAllTiers(s.state)
	}
	res, st := pl.runPreFil(ctx, s.state, s.rep)
	if !st.IsSuccess() {
		if st.IsRejected() {
			return fmt.Sprintf("gang %s: member %s: %s", gangKey, s.rep.Name, st.Message()), nil
		}
		return "", st.AsError()
	}
	if res.AllNodes() {
		all, err := snapshot.List()
		if err != nil {
			return "", err
		}
		s.candidates = all
	} else {
		s.narrowed = true
		for name := range res.NodeNames {
			if ni, err := snapshot.Get(name); err == nil {
				s.candidates = append(s.candidates, ni)
			}
		}
		slices.SortFunc(s.candidates, func(a, b fwk.NodeInfo) int { return cmp.Compare(a.Node().Name, b.Node().Name) })
	}
	affinity := s.rep.Spec.Affinity
	s.interPod = affinity != nil && affinity.PodAffinity != nil && len(affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0
	for _, c := range s.rep.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable == v1.DoNotSchedule {
			s.interPod = true
		}
	}

	ok := make([]bool, len(s.candidates))
	reasons := make([]string, len(s.candidates))
	pl.handle.Parallelizer().Until(ctx, len(s.candidates), func(i int) {
		st := pl.handle.RunFilterPlugins(ctx, s.state, s.rep, s.candidates[i])
		if st.IsSuccess() {
			ok[i] = true
		} else if r := st.Reasons(); len(r) > 0 {
			reasons[i] = r[0]
		} else {
			reasons[i] = st.Message()
		}
	}, Name)
	// A cancelled context leaves nodes unvisited: no verdict from partial work.
	if err := ctx.Err(); err != nil {
		return "", err
	}
	for i := range s.candidates {
		if ok[i] {
			s.feasible = append(s.feasible, i)
		} else {
			s.reasons[reasons[i]]++
		}
	}
	dominant := dominantResource(s.req)
	type keyed struct {
		i    int
		free int64
	}
	byFree := make([]keyed, len(s.feasible))
	for k, i := range s.feasible {
		byFree[k] = keyed{i, free(s.candidates[i], dominant)}
	}
	slices.SortStableFunc(byFree, func(a, b keyed) int { return cmp.Compare(a.free, b.free) })
	for k := range byFree {
		s.feasible[k] = byFree[k].i
	}
	return "", nil
}

// placeMember returns the node for one member: a node the plan already uses, else the
// tightest feasible one that still passes Filter with the members planned so far.
func (pl *Gang) placeMember(ctx context.Context, pod *v1.Pod, s *memberSpec, touched map[string]fwk.NodeInfo, used []string) (fwk.NodeInfo, error) {
	candidate := map[string]bool{}
	for _, i := range s.feasible {
		candidate[s.candidates[i].Node().Name] = true
	}
	fits := func(ni fwk.NodeInfo) bool { return pl.handle.RunFilterPlugins(ctx, s.state, pod, ni).IsSuccess() }
	for _, name := range used {
		if candidate[name] && fits(touched[name]) {
			return touched[name], nil
		}
	}
	for _, i := range s.feasible {
		ni := s.candidates[i]
		if touched[ni.Node().Name] == nil && fits(ni) {
			return ni, nil
		}
	}
	if s.interPod {
		for _, ni := range s.candidates {
			name := ni.Node().Name
			if candidate[name] {
				continue
			}
			if t := touched[name]; t != nil {
				ni = t
			}
			if fits(ni) {
				return ni, nil
			}
		}
	}
	return nil, ctx.Err()
}

// dominantResource is what tightest-fit compares: the first extended resource the member
// requests (GPUs, typically), else cpu.
func dominantResource(r *framework.Resource) v1.ResourceName {
	var names []v1.ResourceName
	for name, v := range r.ScalarResources {
		if v > 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return v1.ResourceCPU
	}
	slices.Sort(names)
	return names[0]
}

func free(ni fwk.NodeInfo, name v1.ResourceName) int64 {
	alloc, used := ni.GetAllocatable(), ni.GetRequested()
	if name == v1.ResourceCPU {
		return alloc.GetMilliCPU() - used.GetMilliCPU()
	}
	return alloc.GetScalarResources()[name] - used.GetScalarResources()[name]
}

// bottleneck says why a member of spec s found no node, in the terms a user can act on.
func bottleneck(gangKey string, s *memberSpec) string {
	var b strings.Builder
	pods := "pods"
	if s.members == 1 {
		pods = "pod"
	}
	fmt.Fprintf(&b, "gang %s needs %d %s x %s", gangKey, s.members, pods, describeRequest(s.rep))
	if where := describePlacement(s.rep); where != "" {
		b.WriteString(" on nodes " + where)
	}
	hosts := len(s.feasible)
	switch {
	case hosts == 1:
		b.WriteString("; 1 node can host one")
	default:
		fmt.Fprintf(&b, "; %d nodes can host one", hosts)
	}
	if hosts > 0 {
		fmt.Fprintf(&b, ", and only %d fit together", s.placed)
	}
	type count struct {
		reason string
		n      int
	}
	var counts []count
	for r, n := range s.reasons {
		counts = append(counts, count{r, n})
	}
	slices.SortFunc(counts, func(a, b count) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.reason, b.reason)
	})
	if len(counts) > 3 {
		counts = counts[:3]
	}
	if len(counts) > 0 {
		b.WriteString("; other nodes: ")
		for i, c := range counts {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d %s", c.n, c.reason)
		}
	}
	return b.String()
}

// describeRequest prints a member's requests, extended resources first, then by name:
// "2 nvidia.com/gpu, 8 cpu, 32Gi memory".
func describeRequest(pod *v1.Pod) string {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	var ext, std []v1.ResourceName
	for name, q := range reqs {
		switch {
		case q.IsZero():
		case strings.Contains(string(name), "/"):
			ext = append(ext, name)
		default:
			std = append(std, name)
		}
	}
	slices.Sort(ext)
	slices.Sort(std)
	var all []string
	for _, name := range append(ext, std...) {
		q := reqs[name]
		all = append(all, q.String()+" "+string(name))
	}
	if len(all) == 0 {
		return "no requests"
	}
	return strings.Join(all, ", ")
}

// describePlacement names the node constraints a member states: its GPU model and node selector.
func describePlacement(pod *v1.Pod) string {
	var parts []string
	if m := pod.Annotations["workbench.dev/gpu-model"]; m != "" {
		parts = append(parts, "matching gpu-model "+m)
	}
	if len(pod.Spec.NodeSelector) > 0 {
		var kv []string
		for k, v := range pod.Spec.NodeSelector {
			kv = append(kv, k+"="+v)
		}
		slices.Sort(kv)
		parts = append(parts, "with "+strings.Join(kv, ","))
	}
	return strings.Join(parts, " ")
}
