// Package teampool provides TeamPool: a pod goes to its team's ResourcePools first, then to its
// parent teams' (nearest first), then to shared pools, then to other teams' lendable pools.
// Within a tier, the pool with the most of the pod's dominant resource free wins.
package teampool

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	_ "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/validation"
	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
	wbinformers "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/informers/externalversions"
	wblisters "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/listers/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/informerobj"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "TeamPool"

const (
	preFilterStateKey = "PreFilter" + Name
	preScoreStateKey  = "PreScore" + Name
	signFragmentKey   = "workbench.dev/" + Name
	// resourcePoolEvents is the dynamic-informer resource the scheduler watches for our hints.
	resourcePoolEvents fwk.EventResource = "resourcepools.v1alpha1.workbench.dev"
	// EventReasonInvalidTeam is the event recorded on a pod whose team label is malformed.
	EventReasonInvalidTeam = "InvalidTeam"
	// EventReasonInvalidPool is the event recorded on a pool that is ignored.
	EventReasonInvalidPool = "InvalidResourcePool"
	// fallbackTTL bounds how long a pod skips a tier whose nodes all failed Filter.
	fallbackTTL = time.Minute
	// syncWait is how long New waits for the pools to load, so the first pods are not bounced.
	syncWait = 5 * time.Second
)

func init() {
	// Events about pools name them through the scheduler's recorder, which resolves kinds here.
	utilruntime.Must(workbenchv1alpha1.AddToScheme(clientgoscheme.Scheme))
}

var (
	_ fwk.PreFilterPlugin   = &TeamPool{}
	_ fwk.FilterPlugin      = &TeamPool{}
	_ fwk.PostFilterPlugin  = &TeamPool{}
	_ fwk.PreScorePlugin    = &TeamPool{}
	_ fwk.ScorePlugin       = &TeamPool{}
	_ fwk.PostBindPlugin    = &TeamPool{}
	_ fwk.EnqueueExtensions = &TeamPool{}
	_ fwk.SignPlugin        = &TeamPool{}
)

// TeamPool is the plugin.
type TeamPool struct {
	handle       fwk.Handle
	index        *poolIndex
	teams        teamResolver
	unpooledRank int
	// synced reports whether the index has seen every pool, node and pod listed at start.
	synced     func() bool
	poolLister wblisters.ResourcePoolLister

	// fallbacks remember, per pod, the tier whose every node failed Filter, so the next
	// attempt starts one tier lower.
	fallbackMu sync.Mutex
	fallbacks  map[types.UID]fallback

	tierSets tierSetCache
}

type fallback struct {
	rank int
	at   time.Time
}

// New builds the plugin from defaulted TeamPoolArgs, starts watching ResourcePools and, on the
// leading scheduler, writing their status.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.TeamPoolArgs)
	if !ok {
		return nil, fmt.Errorf("%s: want args of type TeamPoolArgs, got %T", Name, obj)
	}
	var client versioned.Interface
	if h.KubeConfig() != nil {
		c, err := versioned.NewForConfig(informerobj.JSONConfig(h.KubeConfig()))
		if err != nil {
			return nil, fmt.Errorf("%s: ResourcePool client: %w", Name, err)
		}
		client = c
	}
	pl, err := NewWithClient(ctx, args, h, client)
	if err != nil {
		return nil, err
	}
	registerMetrics(pl)
	if client != nil && h.ClientSet() != nil {
		w := newStatusWriter(pl.index, pl.poolLister, client, h.ClientSet(), args)
		go w.run(ctx)
	}
	return pl, nil
}

// newPlugin wires the index to informers; client may be a fake in unit tests.
func newPlugin(ctx context.Context, args *config.TeamPoolArgs, h fwk.Handle, client versioned.Interface) (*TeamPool, error) {
	var gpus []v1.ResourceName
	for _, name := range args.GPUResourceNames {
		gpus = append(gpus, v1.ResourceName(name))
	}
	pl := &TeamPool{
		handle:       h,
		index:        newPoolIndex(gpus),
		unpooledRank: rankShared,
		fallbacks:    map[types.UID]fallback{},
	}
	if args.UnpooledNodes == config.UnpooledNodesLast {
		pl.unpooledRank = rankLast
	}
	f := h.SharedInformerFactory()
	if f == nil {
		return nil, fmt.Errorf("%s: the framework handle has no informer factory", Name)
	}
	pl.teams.namespaces = f.Core().V1().Namespaces().Lister()
	var synced []cache.InformerSynced
	nodeReg, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onNode(obj) },
		UpdateFunc: func(_, obj any) { pl.onNode(obj) },
		DeleteFunc: func(obj any) { pl.onNodeDelete(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	podReg, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.index.updatePod(nil, asPod(obj)) },
		UpdateFunc: func(old, cur any) { pl.index.updatePod(asPod(old), asPod(cur)) },
		DeleteFunc: func(obj any) {
			if pod := asPod(obj); pod != nil {
				pl.index.updatePod(pod, nil)
				pl.forgetFallback(pod.UID)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	synced = append(synced, nodeReg.HasSynced, podReg.HasSynced)
	if client == nil {
		return nil, fmt.Errorf("%s: no client for ResourcePools (the handle has no kubeconfig)", Name)
	}
	poolFactory := wbinformers.NewSharedInformerFactory(client, 0)
	informer := poolFactory.Workbench().V1alpha1().ResourcePools().Informer()
	poolReg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onPool(obj) },
		UpdateFunc: func(_, obj any) { pl.onPool(obj) },
		DeleteFunc: func(obj any) { pl.onPoolDelete(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	synced = append(synced, poolReg.HasSynced)
	pl.synced = func() bool {
		for _, s := range synced {
			if !s() {
				return false
			}
		}
		return true
	}
	pl.poolLister = poolFactory.Workbench().V1alpha1().ResourcePools().Lister()
	poolFactory.Start(ctx.Done())
	waitCtx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), poolReg.HasSynced) {
		klog.FromContext(ctx).Info("ResourcePools not loaded yet; pods wait until they are (is the ResourcePool CRD installed?)", "plugin", Name)
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *TeamPool) Name() string { return Name }

func asPod(obj any) *v1.Pod {
	pod, _ := informerobj.As[*v1.Pod](obj)
	return pod
}

func (pl *TeamPool) onNode(obj any) {
	if node, ok := obj.(*v1.Node); ok {
		pl.index.setNode(node)
	}
}

func (pl *TeamPool) onNodeDelete(obj any) {
	if node, ok := informerobj.As[*v1.Node](obj); ok {
		pl.index.deleteNode(node.Name)
	}
}

func (pl *TeamPool) onPool(obj any) {
	rp, ok := obj.(*workbenchv1alpha1.ResourcePool)
	if !ok {
		return
	}
	p := pl.index.setPool(rp)
	if p.invalid != "" {
		if r := pl.handle.EventRecorder(); r != nil {
			r.Eventf(rp, nil, v1.EventTypeWarning, EventReasonInvalidPool, "Ignoring", "%s", p.invalid)
		}
	}
}

func (pl *TeamPool) onPoolDelete(obj any) {
	if rp, ok := informerobj.As[*workbenchv1alpha1.ResourcePool](obj); ok {
		pl.index.deletePool(rp.Name)
	}
}

// SignPod signs what Filter and Score read from the pod beyond its requests and node
// constraints (signed by the default plugins): its team, from its label or namespace.
func (pl *TeamPool) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{{Key: signFragmentKey, Value: struct{ Label, Namespace string }{pod.Labels[TeamLabel], pod.Namespace}}}, nil
}

// EventsToRegister names the events that can make a pod we rejected schedulable.
func (pl *TeamPool) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// A new or relabelled node may join a pool the pod may use.
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}},
		// A pool created, deleted, relent or re-owned.
		{Event: fwk.ClusterEvent{Resource: resourcePoolEvents, ActionType: fwk.All}},
		// A fixed team label.
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: pl.isSchedulableAfterPodUpdated},
	}, nil
}

func (pl *TeamPool) isSchedulableAfterPodUpdated(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	oldTeam, oldOK := oldPod.Labels[TeamLabel]
	newTeam, newOK := newPod.Labels[TeamLabel]
	if oldOK != newOK || oldTeam != newTeam {
		return fwk.Queue, nil
	}
	logger.V(5).Info("Pod update leaves its team as it was", "pod", klog.KObj(pod))
	return fwk.QueueSkip, nil
}

func (pl *TeamPool) forgetFallback(uid types.UID) {
	pl.fallbackMu.Lock()
	delete(pl.fallbacks, uid)
	pl.fallbackMu.Unlock()
}

// skipThrough returns the rank whose tiers (and better) the pod should skip, or -1.
func (pl *TeamPool) skipThrough(uid types.UID, now time.Time) int {
	pl.fallbackMu.Lock()
	defer pl.fallbackMu.Unlock()
	f, ok := pl.fallbacks[uid]
	if !ok {
		return -1
	}
	if now.Sub(f.at) > fallbackTTL {
		delete(pl.fallbacks, uid)
		return -1
	}
	return f.rank
}

func (pl *TeamPool) rememberFallback(uid types.UID, rank int, now time.Time) {
	pl.fallbackMu.Lock()
	defer pl.fallbackMu.Unlock()
	// Pods that left without an event (or were bound elsewhere) age out here.
	if len(pl.fallbacks) > 10_000 {
		for k, f := range pl.fallbacks {
			if now.Sub(f.at) > fallbackTTL {
				delete(pl.fallbacks, k)
			}
		}
	}
	pl.fallbacks[uid] = fallback{rank: rank, at: now}
}

// NewWithClient builds the plugin with a given ResourcePool client and no status writer, for
// benchmarks and tests whose handle has no kubeconfig (a fake clientset, say). The handle's
// informer factory must be started by the caller.
func NewWithClient(ctx context.Context, args *config.TeamPoolArgs, h fwk.Handle, client versioned.Interface) (*TeamPool, error) {
	if err := validation.ValidateTeamPoolArgs(field.NewPath("pluginConfig").Key(Name).Child("args"), args); err != nil {
		return nil, err
	}
	return newPlugin(ctx, args, h, client)
}

// Synced reports whether the plugin has seen every pool, node and pod listed at start.
func (pl *TeamPool) Synced() bool { return pl.synced() }
