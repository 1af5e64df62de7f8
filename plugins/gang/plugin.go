// Package gang provides Gang: all-or-nothing placement of the pods of a scheduler-plugins
// PodGroup (label scheduling.x-k8s.io/pod-group). When the first member of a gang comes up,
// the plugin plans a node for minMember members on one snapshot, running the profile's own
// Filter plugins per member; the plan's capacity is reserved against every other pod, members
// are steered to their planned nodes, and Permit holds them until minMember are assumed.
// A gang that does not fit is rejected at once, with the bottleneck named.
package gang

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	pginformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
	pglisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	_ "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/validation"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/informerobj"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "Gang"

const (
	// GroupLabel puts a pod in the PodGroup it names (scheduler-plugins' label).
	GroupLabel = schedv1alpha1.PodGroupLabel
	// SessionLabel with value "true" on a PodGroup or a pod marks an interactive session.
	SessionLabel = "workbench.dev/session"
	// MessageAnnotation on a PodGroup carries the latest admission outcome (the API's status
	// has a phase but no message).
	MessageAnnotation = "workbench.dev/gang-message"

	preFilterStateKey = "PreFilter" + Name
	// planningKey marks the cycle states the planner runs the profile's plugins with.
	planningKey = "Planning" + Name
	// podGroupEvents is the dynamic-informer resource the scheduler watches for our hints.
	podGroupEvents fwk.EventResource = "podgroups.v1alpha1.scheduling.x-k8s.io"

	// Event reasons, on pods and PodGroups.
	EventReasonNotAdmitted = "GangNotAdmitted"
	EventReasonAdmitted    = "GangAdmitted"
	EventReasonTimedOut    = "GangTimedOut"
	EventReasonInvalid     = "InvalidPodGroup"

	syncWait = 5 * time.Second
)

func init() {
	// Events about PodGroups name them through the scheduler's recorder, which resolves kinds here.
	utilruntime.Must(schedv1alpha1.AddToScheme(clientgoscheme.Scheme))
}

var (
	_ fwk.QueueSortPlugin   = &Gang{}
	_ fwk.PreFilterPlugin   = &Gang{}
	_ fwk.FilterPlugin      = &Gang{}
	_ fwk.PostFilterPlugin  = &Gang{}
	_ fwk.ReservePlugin     = &Gang{}
	_ fwk.PermitPlugin      = &Gang{}
	_ fwk.EnqueueExtensions = &Gang{}
	_ fwk.SignPlugin        = &Gang{}
)

// preFilterRunner is the part of the framework the planner needs beyond fwk.Handle: the
// handle given to plugins is the framework itself, which runs PreFilter for any pod.
type preFilterRunner interface {
	RunPreFilterPlugins(ctx context.Context, state fwk.CycleState, pod *v1.Pod) (*fwk.PreFilterResult, *fwk.Status, sets.Set[string])
}

// Gang is the plugin.
type Gang struct {
	handle    fwk.Handle
	args      config.GangArgs
	clock     clock.Clock
	pgLister  pglisters.PodGroupLister
	client    pgclient.Interface
	synced    func() bool
	runPreFil func(ctx context.Context, state fwk.CycleState, pod *v1.Pod) (*fwk.PreFilterResult, *fwk.Status)

	// epoch moves on every cluster change that can let a rejected gang fit; a gang rejected
	// at the current epoch is rejected again without planning.
	epoch atomic.Uint64
	// reservedSlots counts unclaimed slots of every plan, so pods skip Filter when it is 0.
	reservedSlots atomic.Int64

	mu      sync.Mutex
	gangs   map[string]*gang
	members map[string]map[types.UID]*v1.Pod

	status *statusWriter
	// invalidSeen remembers PodGroup generations already reported invalid.
	invalidSeen map[string]bool
	// turnedAway holds pods that failed while capacity was reserved; they are re-activated
	// when a reservation is released, which no cluster event announces.
	turnedAway map[string]*v1.Pod
}

// New builds the plugin from defaulted GangArgs and starts watching PodGroups.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.GangArgs)
	if !ok {
		return nil, fmt.Errorf("%s: want args of type GangArgs, got %T", Name, obj)
	}
	var client pgclient.Interface
	if h.KubeConfig() != nil {
		c, err := pgclient.NewForConfig(informerobj.JSONConfig(h.KubeConfig()))
		if err != nil {
			return nil, fmt.Errorf("%s: PodGroup client: %w", Name, err)
		}
		client = c
	}
	pl, err := NewWithClient(ctx, args, h, client)
	if err != nil {
		return nil, err
	}
	registerMetrics(pl)
	go pl.status.run(ctx)
	go pl.watchDeadlines(ctx)
	return pl, nil
}

// NewWithClient builds the plugin with a given PodGroup client, for tests and benchmarks whose
// handle has no kubeconfig. It starts no background loop; the handle's informer factory must
// be started by the caller.
func NewWithClient(ctx context.Context, args *config.GangArgs, h fwk.Handle, client pgclient.Interface) (*Gang, error) {
	if err := validation.ValidateGangArgs(field.NewPath("pluginConfig").Key(Name).Child("args"), args); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("%s: no client for PodGroups (the handle has no kubeconfig)", Name)
	}
	runner, ok := h.(preFilterRunner)
	if !ok {
		return nil, fmt.Errorf("%s: the framework handle (%T) cannot run PreFilter plugins for a gang's members", Name, h)
	}
	pl := &Gang{
		handle:  h,
		args:    *args,
		clock:   clock.RealClock{},
		client:  client,
		gangs:   map[string]*gang{},
		members: map[string]map[types.UID]*v1.Pod{},
	}
	pl.runPreFil = func(ctx context.Context, state fwk.CycleState, pod *v1.Pod) (*fwk.PreFilterResult, *fwk.Status) {
		r, s, _ := runner.RunPreFilterPlugins(ctx, state, pod)
		return r, s
	}
	f := h.SharedInformerFactory()
	if f == nil {
		return nil, fmt.Errorf("%s: the framework handle has no informer factory", Name)
	}
	podReg, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onPod(nil, asPod(obj)) },
		UpdateFunc: func(old, cur any) { pl.onPod(asPod(old), asPod(cur)) },
		DeleteFunc: func(obj any) { pl.onPod(asPod(obj), nil) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	nodeReg, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { pl.epoch.Add(1) },
		UpdateFunc: func(old, cur any) { pl.onNodeUpdate(old, cur) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	factory := pginformers.NewSharedInformerFactory(client, 0)
	informer := factory.Scheduling().V1alpha1().PodGroups().Informer()
	pgReg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { pl.epoch.Add(1) },
		UpdateFunc: func(old, cur any) { pl.onPodGroupUpdate(old, cur) },
		DeleteFunc: func(obj any) { pl.onPodGroupDelete(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl.pgLister = factory.Scheduling().V1alpha1().PodGroups().Lister()
	pl.synced = func() bool { return podReg.HasSynced() && nodeReg.HasSynced() && pgReg.HasSynced() }
	pl.status = newStatusWriter(client, pl.pgLister)
	factory.Start(ctx.Done())
	waitCtx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), pgReg.HasSynced) {
		klog.FromContext(ctx).Info("PodGroups not loaded yet; gang members wait until they are (is the PodGroup CRD installed?)", "plugin", Name)
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *Gang) Name() string { return Name }

// SignPod lets pods be batched (opportunistic batching) except gang members, which are
// placed by plan, and any pod while capacity is reserved, as reservations change per cycle.
func (pl *Gang) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if gangKeyOf(pod) != "" {
		return nil, fwk.NewStatus(fwk.Unschedulable, "gang members are not signable")
	}
	if pl.reservedSlots.Load() > 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, "pods are not signable while capacity is reserved for a gang")
	}
	return nil, nil
}

// Synced reports whether the plugin has seen every pod, node and PodGroup listed at start.
func (pl *Gang) Synced() bool { return pl.synced() }

func asPod(obj any) *v1.Pod {
	pod, _ := informerobj.As[*v1.Pod](obj)
	return pod
}

func asPodGroup(obj any) *schedv1alpha1.PodGroup {
	pg, _ := informerobj.As[*schedv1alpha1.PodGroup](obj)
	return pg
}

// gangKeyOf returns "namespace/name" of the pod's PodGroup, or "" for a pod in none. Pods in a
// native scheduling.k8s.io PodGroup (spec.schedulingGroup) are left to the in-tree plugin.
func gangKeyOf(pod *v1.Pod) string {
	if pod == nil || pod.Spec.SchedulingGroup != nil {
		return ""
	}
	name := pod.Labels[GroupLabel]
	if name == "" {
		return ""
	}
	return pod.Namespace + "/" + name
}

func isTerminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

// onPod keeps the member index and moves the epoch when capacity frees or a member arrives.
func (pl *Gang) onPod(old, cur *v1.Pod) {
	if old != nil && old.Spec.NodeName != "" && (cur == nil || (isTerminal(cur) && !isTerminal(old))) {
		pl.epoch.Add(1)
	}
	oldKey, curKey := gangKeyOf(old), gangKeyOf(cur)
	if oldKey == "" && curKey == "" {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if oldKey != "" && oldKey != curKey {
		delete(pl.members[oldKey], old.UID)
		if len(pl.members[oldKey]) == 0 {
			delete(pl.members, oldKey)
		}
	}
	if curKey != "" {
		if isTerminal(cur) {
			delete(pl.members[curKey], cur.UID)
		} else {
			m := pl.members[curKey]
			if m == nil {
				m = map[types.UID]*v1.Pod{}
				pl.members[curKey] = m
			}
			_, known := m[cur.UID]
			m[cur.UID] = cur
			if !known {
				pl.epoch.Add(1)
				// The scheduler's queue may have seen this member's arrival (and retried the
				// others) before we counted it here: members rejected while we could not count
				// the whole gang are brought back now.
				if g := pl.gangs[curKey]; g != nil && g.plan == nil && g.lastReason != "" && len(m) >= g.minMember {
					pl.activateLocked(g)
				}
			}
		}
	}
	// A member that is gone, finished, or left the gang no longer counts as placed; if its
	// gang was still being placed, the gang restarts.
	if oldKey != "" && (cur == nil || oldKey != curKey || isTerminal(cur)) {
		if g := pl.gangs[oldKey]; g != nil {
			if g.plan != nil && !g.plan.complete {
				pl.abortLocked(klog.Background(), g, fmt.Sprintf("member %s was deleted", klog.KObj(old)))
			}
			delete(g.assumed, old.UID)
		}
	}
}

func (pl *Gang) onNodeUpdate(oldObj, curObj any) {
	old, ok1 := oldObj.(*v1.Node)
	cur, ok2 := curObj.(*v1.Node)
	if !ok1 || !ok2 {
		pl.epoch.Add(1)
		return
	}
	// Heartbeat-only updates leave gangs as they were.
	if old.Spec.Unschedulable != cur.Spec.Unschedulable || !equalResourceLists(old.Status.Allocatable, cur.Status.Allocatable) ||
		!maps.Equal(old.Labels, cur.Labels) || !slices.EqualFunc(old.Spec.Taints, cur.Spec.Taints, sameTaint) {
		pl.epoch.Add(1)
	}
}

func (pl *Gang) onPodGroupUpdate(oldObj, curObj any) {
	old, cur := asPodGroup(oldObj), asPodGroup(curObj)
	if old == nil || cur == nil || old.Generation != cur.Generation || !maps.Equal(old.Labels, cur.Labels) {
		pl.epoch.Add(1)
	}
}

func (pl *Gang) onPodGroupDelete(obj any) {
	pg := asPodGroup(obj)
	if pg == nil {
		return
	}
	pl.epoch.Add(1)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if g := pl.gangs[pg.Namespace+"/"+pg.Name]; g != nil {
		if g.plan != nil && !g.plan.complete {
			pl.abortLocked(klog.Background(), g, "its PodGroup was deleted")
		}
		delete(pl.gangs, g.key)
	}
}

func equalResourceLists(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func sameTaint(a, b v1.Taint) bool {
	return a.Key == b.Key && a.Value == b.Value && a.Effect == b.Effect
}
