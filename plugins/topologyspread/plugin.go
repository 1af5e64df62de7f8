// Package topologyspread provides IndexedPodTopologySpread, a drop-in replacement for upstream's
// PodTopologySpread plugin that makes the same decisions from counts kept across scheduling
// cycles, so a pod costs O(domains + nodes changed since the last cycle) instead of a walk over
// every pod in the cluster.
package topologyspread

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	"k8s.io/utils/clock"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	_ "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
)

// Name is the plugin's name in a KubeSchedulerConfiguration.
const Name = "IndexedPodTopologySpread"

const (
	preFilterStateKey = "PreFilter" + Name
	preScoreStateKey  = "PreScore" + Name
)

var (
	_ fwk.PreFilterPlugin   = &IndexedPodTopologySpread{}
	_ fwk.FilterPlugin      = &IndexedPodTopologySpread{}
	_ fwk.PreScorePlugin    = &IndexedPodTopologySpread{}
	_ fwk.ScorePlugin       = &IndexedPodTopologySpread{}
	_ fwk.EnqueueExtensions = &IndexedPodTopologySpread{}
	_ fwk.SignPlugin        = &IndexedPodTopologySpread{}
)

// systemDefaultConstraints are upstream's (podtopologyspread/plugin.go).
var systemDefaultConstraints = []v1.TopologySpreadConstraint{
	{TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 3},
	{TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 5},
}

// IndexedPodTopologySpread is the plugin.
type IndexedPodTopologySpread struct {
	fts                feature.Features
	systemDefaulted    bool
	defaultConstraints []v1.TopologySpreadConstraint
	sharedLister       fwk.SharedLister
	services           corelisters.ServiceLister
	replicationCtrls   corelisters.ReplicationControllerLister
	replicaSets        appslisters.ReplicaSetLister
	statefulSets       appslisters.StatefulSetLister

	index *spreadIndex
	// upstream is upstream's plugin with the same args. It supplies the queueing hints, and it
	// decides pod-group scheduling cycles, which change the snapshot in place without bumping
	// NodeInfo generations, so the index cannot follow them.
	upstream *podtopologyspread.PodTopologySpread
}

// New builds the plugin from IndexedPodTopologySpreadArgs (or upstream's PodTopologySpreadArgs).
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	pl, err := newPlugin(ctx, obj, h, feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate), clock.RealClock{})
	if err != nil {
		return nil, err
	}
	registerMetrics(pl.index)
	// Idle counts go even when no constrained pod arrives to run a cycle.
	go wait.UntilWithContext(ctx, func(context.Context) { pl.index.sweepIdle() }, sweepInterval)
	return pl, nil
}

func newPlugin(ctx context.Context, obj runtime.Object, h fwk.Handle, fts feature.Features, clk clock.PassiveClock) (*IndexedPodTopologySpread, error) {
	var args schedconfig.PodTopologySpreadArgs
	switch a := obj.(type) {
	case *config.IndexedPodTopologySpreadArgs:
		args = schedconfig.PodTopologySpreadArgs{DefaultConstraints: a.DefaultConstraints, DefaultingType: a.DefaultingType}
	case *schedconfig.PodTopologySpreadArgs:
		args = *a
	default:
		return nil, fmt.Errorf("%s: want args of type IndexedPodTopologySpreadArgs, got %T", Name, obj)
	}
	if err := schedvalidation.ValidatePodTopologySpreadArgs(field.NewPath("pluginConfig").Key(Name).Child("args"), &args); err != nil {
		return nil, err
	}
	if h.SnapshotSharedLister() == nil {
		return nil, fmt.Errorf("%s: SnapshotSharedLister is nil", Name)
	}
	up, err := podtopologyspread.New(ctx, &args, h, fts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl := &IndexedPodTopologySpread{
		fts:                fts,
		sharedLister:       h.SnapshotSharedLister(),
		defaultConstraints: args.DefaultConstraints,
		index:              newSpreadIndex(clk, fts.EnableTaintTolerationComparisonOperators, h.Parallelizer()),
		upstream:           up.(*podtopologyspread.PodTopologySpread),
	}
	if args.DefaultingType == schedconfig.SystemDefaulting {
		pl.defaultConstraints = systemDefaultConstraints
		pl.systemDefaulted = true
	}
	if len(pl.defaultConstraints) != 0 {
		f := h.SharedInformerFactory()
		pl.services = f.Core().V1().Services().Lister()
		pl.replicationCtrls = f.Core().V1().ReplicationControllers().Lister()
		pl.replicaSets = f.Apps().V1().ReplicaSets().Lister()
		pl.statefulSets = f.Apps().V1().StatefulSets().Lister()
	}
	return pl, nil
}

// Name returns the plugin's name.
func (pl *IndexedPodTopologySpread) Name() string { return Name }

// SignPod refuses pods with spread constraints, as upstream does: placing one pod changes the
// skew seen on every node of its domain, so results cannot be reused for the next pod.
func (pl *IndexedPodTopologySpread) SignPod(ctx context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return pl.upstream.SignPod(ctx, pod)
}

// EventsToRegister returns upstream's events and queueing hints: the plugin rejects the same
// pods for the same reasons, so the same events can make them schedulable.
func (pl *IndexedPodTopologySpread) EventsToRegister(ctx context.Context) ([]fwk.ClusterEventWithHint, error) {
	return pl.upstream.EventsToRegister(ctx)
}
