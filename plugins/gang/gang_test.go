package gang

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

func TestLess(t *testing.T) {
	older, newer := testStart.Add(-time.Hour), testStart
	pod := func(name string, prio int32, created time.Time, labels map[string]string) *v1.Pod {
		w := st.MakePod().Namespace("ds").Name(name).UID(name).Priority(prio).CreationTimestamp(metav1.NewTime(created))
		for k, v := range labels {
			w = w.Label(k, v)
		}
		return w.Obj()
	}
	session := map[string]string{SessionLabel: "true"}
	groups := []*schedv1alpha1.PodGroup{
		podGroup("old-batch", 2, nil), podGroup("new-session", 2, session), podGroup("a", 2, nil), podGroup("b", 2, nil),
	}
	groups[0].CreationTimestamp = metav1.NewTime(older)
	groups[1].CreationTimestamp = metav1.NewTime(newer)
	h := newHarness(t, cluster{groups: groups})
	tests := []struct {
		name string
		a, b *v1.Pod
		want bool
	}{
		{"higher priority first", pod("p1", 10, newer, nil), pod("p2", 0, older, session), true},
		{"session before batch at equal priority", pod("p1", 0, newer, session), pod("p2", 0, older, nil), true},
		{"batch after session", pod("p1", 0, older, nil), pod("p2", 0, newer, session), false},
		{"older pod first", pod("p1", 0, older, nil), pod("p2", 0, newer, nil), true},
		{"member takes its PodGroup's session label", pod("m", 0, newer, map[string]string{GroupLabel: "new-session"}), pod("p", 0, older, nil), true},
		{"member takes its PodGroup's creation time", pod("m", 0, newer, map[string]string{GroupLabel: "old-batch"}), pod("p", 0, older.Add(time.Minute), nil), true},
		{"gangs created together: by name", pod("b1", 0, older, map[string]string{GroupLabel: "b"}), pod("a1", 0, newer, map[string]string{GroupLabel: "a"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.pl.Less(queued(tt.a, testStart), queued(tt.b, testStart)); got != tt.want {
				t.Errorf("Less(%s, %s) = %v, want %v", tt.a.Name, tt.b.Name, got, tt.want)
			}
		})
	}

	t.Run("native pod-group entities compare as PrioritySort does", func(t *testing.T) {
		native := &framework.QueuedPodGroupInfo{PodGroupInfo: &framework.PodGroupInfo{}, QueueingParams: framework.QueueingParams{Timestamp: testStart}}
		if !h.pl.Less(native, queued(pod("later", 0, older, session), testStart.Add(time.Second))) {
			t.Error("native pod group queued first should come first at equal priority")
		}
		if h.pl.Less(native, queued(pod("earlier", 0, newer, nil), testStart.Add(-time.Second))) {
			t.Error("native pod group queued later should come later at equal priority")
		}
	})

	t.Run("members of a gang come up together", func(t *testing.T) {
		var infos []fwk.QueuedEntityInfo
		for i := 0; i < 4; i++ {
			// Pods created in between the members, and members queued at different times.
			infos = append(infos,
				queued(pod(fmt.Sprintf("a-%d", i), 0, newer, map[string]string{GroupLabel: "a"}), testStart.Add(time.Duration(i*2)*time.Second)),
				queued(pod(fmt.Sprintf("b-%d", i), 0, newer, map[string]string{GroupLabel: "b"}), testStart.Add(time.Duration(i*2+1)*time.Second)),
				queued(pod(fmt.Sprintf("solo-%d", i), 0, newer, nil), testStart.Add(time.Duration(i)*time.Second)))
		}
		rand.New(rand.NewSource(1)).Shuffle(len(infos), func(i, j int) { infos[i], infos[j] = infos[j], infos[i] })
		sort.SliceStable(infos, func(i, j int) bool { return h.pl.Less(infos[i], infos[j]) })
		var order []string
		for _, e := range infos {
			order = append(order, podOf(e).Name[:1])
		}
		if got := strings.Join(order, ""); !strings.Contains(got, "aaaa") || !strings.Contains(got, "bbbb") {
			t.Errorf("queue order %s: members of a gang are not adjacent", got)
		}
	})
}

func queued(pod *v1.Pod, at time.Time) fwk.QueuedEntityInfo {
	pi, _ := framework.NewPodInfo(pod)
	return &framework.QueuedPodInfo{PodInfo: pi, QueueingParams: framework.QueueingParams{Timestamp: at}}
}

func TestAdmission(t *testing.T) {
	h100 := map[string]string{"gpu-model": "h100"}
	gpus := func(n string) map[v1.ResourceName]string { return map[v1.ResourceName]string{"cpu": "1", gpu: n} }
	members := func(group string, n int, req map[v1.ResourceName]string) []*v1.Pod {
		var pods []*v1.Pod
		for i := 0; i < n; i++ {
			pods = append(pods, member(group, fmt.Sprintf("%s-%d", group, i), req))
		}
		return pods
	}
	running := func(node string, req map[v1.ResourceName]string) *v1.Pod {
		return st.MakePod().Namespace("other").Name("run-" + node).UID("run-" + node).Node(node).Req(req).Obj()
	}
	withSelector := func(pods []*v1.Pod, sel map[string]string) []*v1.Pod {
		for _, p := range pods {
			p.Spec.NodeSelector = sel
		}
		return pods
	}
	tests := []struct {
		name  string
		c     cluster
		group string
		// wantNodes is the plan, sorted; wantReason a substring of the rejection.
		wantNodes  []string
		wantReason []string
	}{
		{
			name: "4 x 2 GPUs on two free 4-GPU nodes",
			c: cluster{
				nodes:  []*v1.Node{gpuNode("g1", "4", nil), gpuNode("g2", "4", nil), cpuNode("c1", "8")},
				pods:   members("train", 4, gpus("2")),
				groups: []*schedv1alpha1.PodGroup{podGroup("train", 4, nil)},
			},
			group:     "train",
			wantNodes: []string{"g1", "g1", "g2", "g2"},
		},
		{
			name: "free GPUs counted per node, not in aggregate",
			c: cluster{
				// 8 GPUs free in total, one per node: no member of 2 fits anywhere.
				nodes: []*v1.Node{gpuNode("g1", "2", nil), gpuNode("g2", "2", nil), gpuNode("g3", "2", nil), gpuNode("g4", "2", nil),
					gpuNode("g5", "2", nil), gpuNode("g6", "2", nil), gpuNode("g7", "2", nil), gpuNode("g8", "2", nil)},
				pods: append(members("train", 4, gpus("2")),
					running("g1", gpus("1")), running("g2", gpus("1")), running("g3", gpus("1")), running("g4", gpus("1")),
					running("g5", gpus("1")), running("g6", gpus("1")), running("g7", gpus("1")), running("g8", gpus("1"))),
				groups: []*schedv1alpha1.PodGroup{podGroup("train", 4, nil)},
			},
			group:      "train",
			wantReason: []string{"gang ds/train needs 4 pods x 2 nvidia.com/gpu, 1 cpu; 0 nodes can host one; other nodes: 8 Insufficient nvidia.com/gpu"},
		},
		{
			name: "the bottleneck: one H100 node can host one",
			c: cluster{
				nodes:  []*v1.Node{gpuNode("h1", "2", h100), gpuNode("a1", "8", map[string]string{"gpu-model": "a100"})},
				pods:   withSelector(members("train", 4, gpus("2")), h100),
				groups: []*schedv1alpha1.PodGroup{podGroup("train", 4, nil)},
			},
			group:      "train",
			wantReason: []string{"needs 4 pods x 2 nvidia.com/gpu, 1 cpu on nodes with gpu-model=h100; 1 node can host one, and only 1 fit together; other nodes: 1 node(s) didn't match Pod's node affinity/selector"},
		},
		{
			name: "fewer members than minMember",
			c: cluster{
				nodes:  []*v1.Node{cpuNode("c1", "8")},
				pods:   members("nb", 2, map[v1.ResourceName]string{"cpu": "1"}),
				groups: []*schedv1alpha1.PodGroup{podGroup("nb", 3, nil)},
			},
			group:      "nb",
			wantReason: []string{"gang ds/nb waits for members: 2 of minMember 3 exist and can be scheduled (0 bound)"},
		},
		{
			name: "PodGroup missing",
			c: cluster{
				nodes: []*v1.Node{cpuNode("c1", "8")},
				pods:  members("ghost", 1, map[v1.ResourceName]string{"cpu": "1"}),
			},
			group:      "ghost",
			wantReason: []string{`PodGroup "ghost" (label scheduling.x-k8s.io/pod-group) not found in namespace ds`},
		},
		{
			name: "minMember 0 slipped past validation",
			c: cluster{
				nodes:  []*v1.Node{cpuNode("c1", "8")},
				pods:   members("zero", 1, map[v1.ResourceName]string{"cpu": "1"}),
				groups: []*schedv1alpha1.PodGroup{podGroup("zero", 0, nil)},
			},
			group:      "zero",
			wantReason: []string{"PodGroup ds/zero: spec.minMember 0 is invalid: must be at least 1"},
		},
		{
			name: "minResources above what the cluster has free",
			c: cluster{
				nodes: []*v1.Node{cpuNode("c1", "8")},
				pods:  members("big", 1, map[v1.ResourceName]string{"cpu": "1"}),
				groups: []*schedv1alpha1.PodGroup{func() *schedv1alpha1.PodGroup {
					pg := podGroup("big", 1, nil)
					pg.Spec.MinResources = v1.ResourceList{"cpu": resource.MustParse("64")}
					return pg
				}()},
			},
			group:      "big",
			wantReason: []string{"spec.minResources needs cpu millicores 64000 (free in the cluster: 8000)"},
		},
		{
			name: "members bound before a restart count; only the rest are planned",
			c: cluster{
				nodes: []*v1.Node{cpuNode("c1", "4"), cpuNode("c2", "4")},
				pods: append(members("nb", 2, map[v1.ResourceName]string{"cpu": "3"}),
					st.MakePod().Namespace("ds").Name("nb-bound-0").UID("nb-bound-0").Label(GroupLabel, "nb").Node("c1").Req(map[v1.ResourceName]string{"cpu": "1"}).Obj(),
					st.MakePod().Namespace("ds").Name("nb-bound-1").UID("nb-bound-1").Label(GroupLabel, "nb").Node("c2").Req(map[v1.ResourceName]string{"cpu": "1"}).Obj()),
				groups: []*schedv1alpha1.PodGroup{podGroup("nb", 4, nil)},
			},
			group:     "nb",
			wantNodes: []string{"c1", "c2"},
		},
		{
			name: "the biggest member is placed first",
			c: cluster{
				nodes: []*v1.Node{cpuNode("small", "2"), cpuNode("large", "4")},
				pods: []*v1.Pod{member("mix", "mix-0", map[v1.ResourceName]string{"cpu": "2"}),
					member("mix", "mix-1", map[v1.ResourceName]string{"cpu": "4"})},
				groups: []*schedv1alpha1.PodGroup{podGroup("mix", 2, nil)},
			},
			group:     "mix",
			wantNodes: []string{"large", "small"},
		},
		{
			name: "anti-affinity between members is checked as the plan grows",
			c: cluster{
				nodes: []*v1.Node{cpuNode("c1", "8"), cpuNode("c2", "8"), cpuNode("c3", "8")},
				pods: func() []*v1.Pod {
					pods := members("ray", 3, map[v1.ResourceName]string{"cpu": "1"})
					for _, p := range pods {
						p.Labels["app"] = "ray"
						p.Spec.Affinity = st.MakePod().PodAntiAffinityExists("app", v1.LabelHostname, st.PodAntiAffinityWithRequiredReq).Obj().Spec.Affinity
					}
					return pods
				}(),
				groups: []*schedv1alpha1.PodGroup{podGroup("ray", 3, nil)},
			},
			group:     "ray",
			wantNodes: []string{"c1", "c2", "c3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.c)
			var first *v1.Pod
			for _, p := range tt.c.pods {
				if p.Labels[GroupLabel] == tt.group && p.Spec.NodeName == "" {
					first = p
					break
				}
			}
			_, _, status := h.preFilter(first)
			key := "ds/" + tt.group
			if tt.wantReason != nil {
				if status.IsSuccess() || status.Code() != fwk.UnschedulableAndUnresolvable {
					t.Fatalf("status %v, want UnschedulableAndUnresolvable", status)
				}
				for _, want := range tt.wantReason {
					if !strings.Contains(status.Message(), want) {
						t.Errorf("reason %q\nwant it to contain %q", status.Message(), want)
					}
				}
				if h.planned(key) != nil {
					t.Errorf("rejected gang has a plan %v", h.planned(key))
				}
				return
			}
			if !status.IsSuccess() {
				t.Fatalf("status %v, want admitted", status)
			}
			got := h.planned(key)
			slices.Sort(got)
			if diff := cmp.Diff(tt.wantNodes, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRejectionIsReusedUntilTheClusterChanges(t *testing.T) {
	pods := []*v1.Pod{member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "6"}), member("nb", "nb-1", map[v1.ResourceName]string{"cpu": "6"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: pods, groups: []*schedv1alpha1.PodGroup{podGroup("nb", 2, nil)}})
	_, _, first := h.preFilter(pods[0])
	if first.IsSuccess() {
		t.Fatal("gang that cannot fit was admitted")
	}
	before := h.pl.epoch.Load()
	_, _, second := h.preFilter(pods[1])
	if second.Message() != first.Message() {
		t.Errorf("second member's reason %q, want the first's %q", second.Message(), first.Message())
	}
	h.pl.epoch.Add(1)
	_, _, third := h.preFilter(pods[1])
	if third.IsSuccess() || h.pl.epoch.Load() != before+1 {
		t.Errorf("after a change: %v", third)
	}
}

func TestReservationKeepsOtherPodsOff(t *testing.T) {
	pods := []*v1.Pod{member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "3"}), member("nb", "nb-1", map[v1.ResourceName]string{"cpu": "3"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "4"), cpuNode("c2", "4"), cpuNode("c3", "4")}, pods: pods,
		groups: []*schedv1alpha1.PodGroup{podGroup("nb", 2, nil)}})
	state, res, status := h.preFilter(pods[0])
	if !status.IsSuccess() {
		t.Fatal(status)
	}
	planned := h.planned("ds/nb")
	if len(planned) != 2 {
		t.Fatalf("plan %v", planned)
	}
	if res == nil || res.AllNodes() || !res.NodeNames.Has(planned[0]) {
		t.Errorf("member not steered to its planned nodes: %v", res)
	}
	if s := h.filter(state, pods[0], planned[0]); !s.IsSuccess() {
		t.Errorf("member on its planned node: %v", s)
	}

	other := st.MakePod().Namespace("ds").Name("other").UID("other").Req(map[v1.ResourceName]string{"cpu": "2"}).Obj()
	otherState, _, status := h.preFilter(other)
	if !status.IsSuccess() {
		t.Fatal(status)
	}
	for _, node := range []string{"c1", "c2", "c3"} {
		got := h.filter(otherState, other, node)
		if slices.Contains(planned, node) {
			if got.IsSuccess() || got.Message() != ErrReasonReserved {
				t.Errorf("other pod on reserved node %s: %v, want %q", node, got, ErrReasonReserved)
			}
		} else if !got.IsSuccess() {
			t.Errorf("other pod on free node %s: %v", node, got)
		}
	}

	// A second gang plans around the first one's reservation.
	second := []*v1.Pod{member("two", "two-0", map[v1.ResourceName]string{"cpu": "3"})}
	h2 := h
	if _, err := h2.pgClient.SchedulingV1alpha1().PodGroups("ds").Create(h.ctx, podGroup("two", 1, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { _, err := h.pl.pgLister.PodGroups("ds").Get("two"); return err == nil }) {
		t.Fatal("PodGroup two not seen")
	}
	if _, _, status := h.preFilter(second[0]); !status.IsSuccess() {
		t.Fatalf("second gang: %v", status)
	}
	if got := h.planned("ds/two"); len(got) != 1 || slices.Contains(planned, got[0]) {
		t.Errorf("second gang planned on %v, first holds %v", got, planned)
	}
}

func TestPermitReleasesTheGangTogether(t *testing.T) {
	pods := []*v1.Pod{member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "1"}), member("nb", "nb-1", map[v1.ResourceName]string{"cpu": "1"}),
		member("nb", "nb-2", map[v1.ResourceName]string{"cpu": "1"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: pods, groups: []*schedv1alpha1.PodGroup{podGroup("nb", 3, nil)}})
	results := make(chan *fwk.Status, len(pods))
	for i, pod := range pods {
		state, _, status := h.preFilter(pod)
		if !status.IsSuccess() {
			t.Fatalf("%s: %v", pod.Name, status)
		}
		if s := h.fh.RunReservePluginsReserve(h.ctx, state, pod, "c1"); !s.IsSuccess() {
			t.Fatal(s)
		}
		waits, status := h.fh.RunPermitPlugins(h.ctx, state, pod, "c1")
		if i < len(pods)-1 {
			if !status.IsWait() {
				t.Fatalf("member %d of 3: %v, want Wait", i+1, status)
			}
			h.fh.AddWaitingPod(pod, waits)
			go func(p *v1.Pod) { results <- h.fh.WaitOnPermit(h.ctx, p) }(pod)
			continue
		}
		if !status.IsSuccess() {
			t.Fatalf("last member: %v, want Success", status)
		}
	}
	for i := 0; i < len(pods)-1; i++ {
		select {
		case s := <-results:
			if !s.IsSuccess() {
				t.Errorf("waiting member: %v", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiting members were not released")
		}
	}
	if n := h.pl.reservedSlots.Load(); n != 0 {
		t.Errorf("%d slots still reserved after the gang completed", n)
	}
}

func TestMemberFailureReleasesTheGang(t *testing.T) {
	pods := []*v1.Pod{member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "1"}), member("nb", "nb-1", map[v1.ResourceName]string{"cpu": "1"}),
		member("nb", "nb-2", map[v1.ResourceName]string{"cpu": "1"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: pods, groups: []*schedv1alpha1.PodGroup{podGroup("nb", 3, nil)}})
	state, _, _ := h.preFilter(pods[0])
	h.fh.RunReservePluginsReserve(h.ctx, state, pods[0], "c1")
	waits, s := h.fh.RunPermitPlugins(h.ctx, state, pods[0], "c1")
	if !s.IsWait() {
		t.Fatalf("first member: %v", s)
	}
	h.fh.AddWaitingPod(pods[0], waits)
	waited := make(chan *fwk.Status, 1)
	go func() { waited <- h.fh.WaitOnPermit(h.ctx, pods[0]) }()

	// The second member fails after Reserve (a bind error, say).
	state2, _, _ := h.preFilter(pods[1])
	h.fh.RunReservePluginsReserve(h.ctx, state2, pods[1], "c1")
	h.fh.RunReservePluginsUnreserve(h.ctx, state2, pods[1], "c1")

	select {
	case s := <-waited:
		if s.IsSuccess() || !strings.Contains(s.Message(), "was not completed: member ds/nb-1 was not placed") {
			t.Errorf("waiting member: %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting member was not rejected")
	}
	if h.planned("ds/nb") != nil || h.pl.reservedSlots.Load() != 0 {
		t.Errorf("plan %v and %d slots left after a member failed", h.planned("ds/nb"), h.pl.reservedSlots.Load())
	}
}

func TestTimeoutMarksThePodGroupFailed(t *testing.T) {
	pg := podGroup("nb", 2, map[string]string{SessionLabel: "true"})
	pg.Spec.ScheduleTimeoutSeconds = ptr.To[int32](30)
	pods := []*v1.Pod{member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "6"}), member("nb", "nb-1", map[v1.ResourceName]string{"cpu": "6"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: pods, groups: []*schedv1alpha1.PodGroup{pg}})
	if _, _, status := h.preFilter(pods[0]); status.IsSuccess() {
		t.Fatal("admitted")
	}
	h.clock.Step(29 * time.Second)
	h.pl.checkDeadlines()
	drain(h)
	got, _ := h.pgClient.SchedulingV1alpha1().PodGroups("ds").Get(h.ctx, "nb", metav1.GetOptions{})
	if got.Status.Phase != schedv1alpha1.PodGroupPending || !strings.Contains(got.Annotations[MessageAnnotation], "1 node can host one, and only 1 fit together") {
		t.Errorf("before the timeout: phase %q, message %q", got.Status.Phase, got.Annotations[MessageAnnotation])
	}
	h.clock.Step(2 * time.Second)
	h.pl.checkDeadlines()
	drain(h)
	got, _ = h.pgClient.SchedulingV1alpha1().PodGroups("ds").Get(h.ctx, "nb", metav1.GetOptions{})
	if got.Status.Phase != schedv1alpha1.PodGroupFailed || !strings.HasPrefix(got.Annotations[MessageAnnotation], "gang ds/nb timed out after 30s: gang ds/nb needs 2 pods x 6 cpu") {
		t.Errorf("after the timeout: phase %q, message %q", got.Status.Phase, got.Annotations[MessageAnnotation])
	}
}

// drain writes every queued PodGroup status, waiting for the lister to see the writes.
func drain(h *harness) {
	for h.pl.status.queue.Len() > 0 {
		h.pl.status.next(h.ctx)
	}
	time.Sleep(100 * time.Millisecond)
}

func TestNativePodGroupMembersAreLeftToTheInTreePlugin(t *testing.T) {
	pod := member("nb", "nb-0", map[v1.ResourceName]string{"cpu": "1"})
	pod.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: ptr.To("native")}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: []*v1.Pod{pod}})
	if _, _, status := h.preFilter(pod); !status.IsSuccess() {
		t.Errorf("pod in a native PodGroup: %v, want Gang to ignore it", status)
	}
}

func TestReleasedReservationLetsTheNextGangIn(t *testing.T) {
	a := []*v1.Pod{member("a", "a-0", map[v1.ResourceName]string{"cpu": "3"}), member("a", "a-1", map[v1.ResourceName]string{"cpu": "3"})}
	b := []*v1.Pod{member("b", "b-0", map[v1.ResourceName]string{"cpu": "3"})}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "4"), cpuNode("c2", "4")}, pods: append(a, b...),
		groups: []*schedv1alpha1.PodGroup{podGroup("a", 2, nil), podGroup("b", 1, nil)}})
	if _, _, s := h.preFilter(a[0]); !s.IsSuccess() {
		t.Fatalf("gang a: %v", s)
	}
	if _, _, s := h.preFilter(b[0]); s.IsSuccess() {
		t.Fatalf("gang b admitted on capacity reserved for a")
	}
	// A member of a fails: a's reservation goes, and b is decided afresh.
	h.fh.RunReservePluginsUnreserve(h.ctx, framework.NewCycleState(), a[1], "c1")
	if _, _, s := h.preFilter(b[0]); !s.IsSuccess() {
		t.Errorf("gang b after a released its reservation: %v", s)
	}
}

func TestCompleteGangThatLosesMembersIsPlacedAsAGangAgain(t *testing.T) {
	bound := []*v1.Pod{
		st.MakePod().Namespace("ds").Name("nb-0").UID("nb-0").Label(GroupLabel, "nb").Node("c1").Req(map[v1.ResourceName]string{"cpu": "1"}).Obj(),
		st.MakePod().Namespace("ds").Name("nb-1").UID("nb-1").Label(GroupLabel, "nb").Node("c1").Req(map[v1.ResourceName]string{"cpu": "1"}).Obj(),
	}
	h := newHarness(t, cluster{nodes: []*v1.Node{cpuNode("c1", "8")}, pods: bound, groups: []*schedv1alpha1.PodGroup{podGroup("nb", 3, nil)}})
	extra := member("nb", "nb-2", map[v1.ResourceName]string{"cpu": "1"})
	if _, err := h.fh.ClientSet().CoreV1().Pods("ds").Create(h.ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { h.pl.mu.Lock(); defer h.pl.mu.Unlock(); return len(h.pl.members["ds/nb"]) == 3 }) {
		t.Fatal("member not seen")
	}
	if _, _, s := h.preFilter(extra); !s.IsSuccess() || len(h.planned("ds/nb")) != 1 {
		t.Fatalf("third member of a gang with 2 bound: %v, plan %v", s, h.planned("ds/nb"))
	}
	h.fh.RunReservePluginsReserve(h.ctx, framework.NewCycleState(), extra, "c1")
	if _, s := h.fh.RunPermitPlugins(h.ctx, framework.NewCycleState(), extra, "c1"); !s.IsSuccess() {
		t.Fatalf("Permit with 2 bound and 1 assumed of minMember 3: %v", s)
	}

	// Two members finish and new ones replace them: the gang is admitted again, not let
	// through one pod at a time.
	for _, name := range []string{"nb-0", "nb-1"} {
		if err := h.fh.ClientSet().CoreV1().Pods("ds").Delete(h.ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	again := []*v1.Pod{member("nb", "nb-3", map[v1.ResourceName]string{"cpu": "1"}), member("nb", "nb-4", map[v1.ResourceName]string{"cpu": "1"})}
	for _, p := range again {
		if _, err := h.fh.ClientSet().CoreV1().Pods("ds").Create(h.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(func() bool { h.pl.mu.Lock(); defer h.pl.mu.Unlock(); return len(h.pl.members["ds/nb"]) == 3 }) {
		t.Fatal("replacements not seen")
	}
	if _, _, s := h.preFilter(again[0]); !s.IsSuccess() {
		t.Fatalf("replacement: %v", s)
	}
	if got := h.planned("ds/nb"); len(got) != 2 {
		t.Errorf("replacements planned %v, want a plan of 2 slots", got)
	}
}

// FuzzPodGroupSettings feeds arbitrary PodGroup fields and labels to admission: it must never
// panic, and a rejection of a bad value names the field.
func FuzzPodGroupSettings(f *testing.F) {
	f.Add(int32(2), int32(30), "true")
	f.Add(int32(0), int32(-5), "")
	f.Add(int32(-1), int32(0), "TRUE")
	f.Fuzz(func(t *testing.T, minMember, timeout int32, session string) {
		pg := podGroup("g", minMember, map[string]string{SessionLabel: session})
		pg.Spec.ScheduleTimeoutSeconds = &timeout
		pod := member("g", "g-0", nil)
		pod.Labels[SessionLabel] = session
		pl := &Gang{args: *testArgs(t), gangs: map[string]*gang{}}
		_, d, isSession, err := pl.groupSettings(pg, pod)
		switch {
		case minMember < 1:
			if err == nil || !strings.Contains(err.Error(), "spec.minMember") {
				t.Errorf("minMember %d: %v", minMember, err)
			}
		case timeout < 1:
			if err == nil || !strings.Contains(err.Error(), "spec.scheduleTimeoutSeconds") {
				t.Errorf("scheduleTimeoutSeconds %d: %v", timeout, err)
			}
		case err != nil || d != time.Duration(timeout)*time.Second:
			t.Errorf("valid PodGroup: timeout %v, %v", d, err)
		default:
		}
		if err != nil {
			return
		}
		if want := session == "true"; isSession != want {
			t.Errorf("session label %q: session %v", session, isSession)
		}
	})
}
