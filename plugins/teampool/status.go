package teampool

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/validation"
	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
	wblisters "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/listers/workbench/v1alpha1"
)

// statusWriter writes each pool's status from the index, at most once per interval and only
// when it changed, and only while this process holds the scheduler's leader lease.
type statusWriter struct {
	index    *poolIndex
	pools    wblisters.ResourcePoolLister
	client   versioned.Interface
	kube     kubernetes.Interface
	interval time.Duration
	// leaseNamespace and leaseName are empty when every instance writes.
	leaseNamespace, leaseName string
	// holderPrefix is how our leader-election identity starts (kube-scheduler's is
	// hostname + "_" + a UUID).
	holderPrefix string
}

func newStatusWriter(index *poolIndex, pools wblisters.ResourcePoolLister, client versioned.Interface, kube kubernetes.Interface, args *config.TeamPoolArgs) *statusWriter {
	w := &statusWriter{index: index, pools: pools, client: client, kube: kube, interval: args.StatusUpdateInterval.Duration}
	if args.LeaderLease != validation.NoLeaderLease {
		w.leaseNamespace, w.leaseName, _ = strings.Cut(args.LeaderLease, "/")
		host, _ := os.Hostname()
		w.holderPrefix = host + "_"
	}
	return w
}

func (w *statusWriter) run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var lastVersion uint64
	wasLeading := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		leading := w.leading(ctx)
		if !leading {
			wasLeading = false
			continue
		}
		// Write all on taking over (the previous leader's figures may be stale), then on change.
		version := w.index.version.Load()
		if wasLeading && version == lastVersion {
			continue
		}
		if err := w.writeAll(ctx); err != nil {
			logger.V(2).Info("Writing ResourcePool status", "err", err)
			continue
		}
		wasLeading, lastVersion = true, version
	}
}

func (w *statusWriter) leading(ctx context.Context) bool {
	if w.leaseName == "" {
		return true
	}
	lease, err := w.kube.CoordinationV1().Leases(w.leaseNamespace).Get(ctx, w.leaseName, metav1.GetOptions{})
	if err != nil {
		return false
	}
	return holds(lease, w.holderPrefix, time.Now())
}

// holds reports whether an unexpired lease names a holder with our prefix.
func holds(lease *coordinationv1.Lease, prefix string, now time.Time) bool {
	s := lease.Spec
	if s.HolderIdentity == nil || !strings.HasPrefix(*s.HolderIdentity, prefix) || s.RenewTime == nil || s.LeaseDurationSeconds == nil {
		return false
	}
	return now.Sub(s.RenewTime.Time) < time.Duration(*s.LeaseDurationSeconds)*time.Second
}

func (w *statusWriter) writeAll(ctx context.Context) error {
	pools, _ := w.index.summaries()
	var errs []string
	for _, ps := range pools {
		cur, err := w.pools.Get(ps.pool.name)
		if err != nil {
			continue // deleted since
		}
		want := poolStatus(cur, ps)
		if equality.Semantic.DeepEqual(cur.Status, want) {
			continue
		}
		obj := cur.DeepCopy()
		obj.Status = want
		if _, err := w.client.WorkbenchV1alpha1().ResourcePools().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", ps.pool.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("updating status: %s", strings.Join(errs, "; "))
	}
	return nil
}

func quantities(a amounts) workbenchv1alpha1.PoolResources {
	return workbenchv1alpha1.PoolResources{
		CPU:    *resource.NewMilliQuantity(a.milliCPU, resource.DecimalSI),
		Memory: *resource.NewQuantity(a.memory, resource.BinarySI),
		GPU:    *resource.NewQuantity(a.gpu, resource.DecimalSI),
	}
}

// poolStatus is the status a pool should carry; conditions keep their transition times.
func poolStatus(cur *workbenchv1alpha1.ResourcePool, ps poolSummary) workbenchv1alpha1.ResourcePoolStatus {
	free := ps.capacity
	free.sub(ps.allocated)
	st := workbenchv1alpha1.ResourcePoolStatus{
		Nodes:              int32(ps.nodeCount),
		Capacity:           quantities(ps.capacity),
		Allocated:          quantities(ps.allocated),
		Free:               quantities(free),
		ObservedGeneration: cur.Generation,
		Conditions:         append([]metav1.Condition(nil), cur.Status.Conditions...),
	}
	ready := metav1.Condition{Type: workbenchv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Valid",
		Message: fmt.Sprintf("%d nodes", ps.nodeCount), ObservedGeneration: cur.Generation}
	if ps.pool.invalid != "" {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "Invalid", "ignored: "+ps.pool.invalid
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	overlap := metav1.Condition{Type: workbenchv1alpha1.ConditionOverlapping, Status: metav1.ConditionFalse, Reason: "NoOverlap",
		Message: "no node matches another pool", ObservedGeneration: cur.Generation}
	if ps.overlapping > 0 {
		overlap.Status, overlap.Reason = metav1.ConditionTrue, "NodesMatchOtherPools"
		overlap.Message = fmt.Sprintf("%d nodes also match another pool; each belongs to the pool with the most specific selector, then the first by name", ps.overlapping)
	}
	meta.SetStatusCondition(&st.Conditions, overlap)
	return st
}
