package gang

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	pglisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"
)

// maxMessage keeps the annotation readable; the full reason is on the pods' events.
const maxMessage = 1024

// groupStatus is what the plugin wants a PodGroup to say.
type groupStatus struct {
	phase   schedv1alpha1.PodGroupPhase
	message string
	started time.Time
}

// statusWriter writes PodGroup phase and message off the scheduling path, latest wins.
type statusWriter struct {
	client pgclient.Interface
	lister pglisters.PodGroupLister
	queue  workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	desired map[string]groupStatus
}

func newStatusWriter(client pgclient.Interface, lister pglisters.PodGroupLister) *statusWriter {
	return &statusWriter{
		client:  client,
		lister:  lister,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		desired: map[string]groupStatus{},
	}
}

func (w *statusWriter) set(key string, phase schedv1alpha1.PodGroupPhase, message string, started time.Time) {
	if len(message) > maxMessage {
		message = message[:maxMessage-3] + "..."
	}
	w.mu.Lock()
	w.desired[key] = groupStatus{phase: phase, message: message, started: started}
	w.mu.Unlock()
	w.queue.Add(key)
}

func (w *statusWriter) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	for w.next(ctx) {
	}
}

func (w *statusWriter) next(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	w.mu.Lock()
	want, ok := w.desired[key]
	w.mu.Unlock()
	if !ok {
		w.queue.Forget(key)
		return true
	}
	if err := w.write(ctx, key, want); err != nil {
		klog.FromContext(ctx).V(2).Info("Writing PodGroup status", "podGroup", key, "err", err)
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	w.mu.Lock()
	if cur, ok := w.desired[key]; ok && cur == want {
		delete(w.desired, key)
	}
	w.mu.Unlock()
	return true
}

func (w *statusWriter) write(ctx context.Context, key string, want groupStatus) error {
	ns, name, _ := strings.Cut(key, "/")
	pg, err := w.lister.PodGroups(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pg.Annotations[MessageAnnotation] != want.message {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{MessageAnnotation: want.message}}})
		if _, err := w.client.SchedulingV1alpha1().PodGroups(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("annotating PodGroup %s: %w", key, err)
		}
	}
	if pg.Status.Phase == want.phase && !pg.Status.ScheduleStartTime.IsZero() {
		return nil
	}
	status := pg.Status.DeepCopy()
	status.Phase = want.phase
	if status.ScheduleStartTime.IsZero() {
		status.ScheduleStartTime = metav1.NewTime(want.started)
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": status.Phase, "scheduleStartTime": status.ScheduleStartTime}})
	if _, err := w.client.SchedulingV1alpha1().PodGroups(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("writing status of PodGroup %s: %w", key, err)
	}
	return nil
}

// recordGroupEvent records an event on the gang's PodGroup, if it still exists.
func (pl *Gang) recordGroupEvent(key, eventType, reason, msg string) {
	r := pl.handle.EventRecorder()
	if r == nil || pl.pgLister == nil {
		return
	}
	ns, name, _ := strings.Cut(key, "/")
	pg, err := pl.pgLister.PodGroups(ns).Get(name)
	if err != nil {
		return
	}
	r.Eventf(pg, nil, eventType, reason, "Scheduling", "%s", msg)
}

// recordGroupEventOnce records a warning about an invalid PodGroup once per generation.
func (pl *Gang) recordGroupEventOnce(pg *schedv1alpha1.PodGroup, reason, msg string) {
	pl.mu.Lock()
	key := fmt.Sprintf("%s/%s@%d", pg.Namespace, pg.Name, pg.Generation)
	seen := pl.invalidSeen[key]
	if pl.invalidSeen == nil {
		pl.invalidSeen = map[string]bool{}
	}
	pl.invalidSeen[key] = true
	pl.mu.Unlock()
	if !seen {
		if r := pl.handle.EventRecorder(); r != nil {
			r.Eventf(pg, nil, v1.EventTypeWarning, reason, "Scheduling", "%s", msg)
		}
	}
}

// watchDeadlines marks gangs failed when their timeout passes without them being complete,
// even when no cycle runs (a gang that can never fit waits in the unschedulable queue).
func (pl *Gang) watchDeadlines(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pl.checkDeadlines()
	}
}

func (pl *Gang) checkDeadlines() {
	now := pl.clock.Now()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, g := range pl.gangs {
		if g.timedOut || (g.plan != nil && g.plan.complete) || now.Before(g.deadline()) {
			continue
		}
		if g.plan != nil {
			// Waiting members time out in Permit at the same moment, which aborts the gang.
			continue
		}
		reason := g.lastReason
		if reason == "" {
			reason = "its members were not all placed"
		}
		countOutcome(outcomeTimedOut, "timeout")
		pl.markTimedOutLocked(g, fmt.Sprintf("gang %s timed out after %s: %s", g.key, g.timeout, reason))
	}
}
