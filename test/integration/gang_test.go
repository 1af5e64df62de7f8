package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
)

// podGroupClient reaches scheduler-plugins' PodGroups on cp.
func podGroupClient(t *testing.T) pgclient.Interface {
	t.Helper()
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	c, err := pgclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createPodGroup(t *testing.T, ns, name string, minMember int32, timeoutSeconds int32) {
	t.Helper()
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{gang.SessionLabel: "true"}},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: ptr.To(timeoutSeconds)},
	}
	if _, err := podGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Create(context.Background(), pg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating PodGroup %s: %v", name, err)
	}
}

// gangMember is a pod of gang group on the test's gang nodes.
func gangMember(ns, group, name, cpu string) *corev1.Pod {
	p := cpuPod(ns, name, cpu, map[string]string{gang.GroupLabel: group})
	p.Spec.NodeSelector = map[string]string{"it-gang": "true"}
	return p
}

func gangNode(name, cpu string) *corev1.Node {
	n := readyNode(name, map[corev1.ResourceName]string{"cpu": cpu, "memory": "16Gi", "pods": "110"})
	n.Labels["it-gang"] = "true"
	return n
}

// boundByGang counts bound pods per gang in ns.
func boundByGang(ctx context.Context, ns string) (map[string]int, []corev1.Pod, error) {
	pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	bound := map[string]int{}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			bound[p.Labels[gang.GroupLabel]]++
		}
	}
	return bound, pods.Items, nil
}

// More gangs than fit, submitted interleaved, against the shipped config: no gang is ever
// partly bound, the cluster is not left idle while a waiting gang would fit, every gang left
// out says why, deleting a running gang admits the next one, and a gang that can never fit is
// marked failed after its timeout.
func TestGangAdmissionWithShippedConfig(t *testing.T) {
	ctx := context.Background()
	// 3 nodes x 4 cpu; a gang is 3 members x 2 cpu, so two gangs fit at a time, and only if
	// their members are packed two to a node.
	createNodes(t, gangNode("it-gang-1", "4"), gangNode("it-gang-2", "4"), gangNode("it-gang-3", "4"))
	startScheduler(t, nil)
	ns := testNamespace(t)
	const gangs, members = 5, 3
	for g := 0; g < gangs; g++ {
		createPodGroup(t, ns, fmt.Sprintf("g%d", g), members, 120)
	}
	createPodGroup(t, ns, "never", 2, 6)

	// Sample the bindings throughout: a gang seen partly bound must be whole within 2 s
	// (members bind one API call at a time once Permit lets them all go).
	stop := make(chan struct{})
	var mu sync.Mutex
	var partial []string
	partSince := map[string]time.Time{}
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			bound, _, err := boundByGang(ctx, ns)
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			for g := 0; g < gangs; g++ {
				name := fmt.Sprintf("g%d", g)
				n := bound[name]
				if n == 0 || n == members {
					delete(partSince, name)
					continue
				}
				if _, ok := partSince[name]; !ok {
					partSince[name] = now
				} else if now.Sub(partSince[name]) > 2*time.Second {
					partial = append(partial, fmt.Sprintf("%s had %d of %d members bound for over 2s", name, n, members))
					delete(partSince, name)
				}
			}
			if bound["never"] > 0 {
				partial = append(partial, fmt.Sprintf("never had %d members bound", bound["never"]))
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		sampler.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range partial {
			t.Error(p)
		}
	})

	// Interleaved: member 0 of every gang, then member 1 of every gang, and so on.
	for m := 0; m < members; m++ {
		for g := 0; g < gangs; g++ {
			createPod(t, gangMember(ns, fmt.Sprintf("g%d", g), fmt.Sprintf("g%d-m%d", g, m), "2"))
		}
		createPod(t, gangMember(ns, "never", fmt.Sprintf("never-m%d", m), "5"))
	}

	// Capacity is not idle while a waiting gang would fit: two whole gangs run.
	whole := func(bound map[string]int) []string {
		var names []string
		for g := 0; g < gangs; g++ {
			if name := fmt.Sprintf("g%d", g); bound[name] == members {
				names = append(names, name)
			}
		}
		return names
	}
	var running []string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		bound, _, err := boundByGang(ctx, ns)
		if err != nil {
			return false, err
		}
		running = whole(bound)
		return len(running) == 2, nil
	}); err != nil {
		t.Fatalf("want 2 whole gangs running (the cluster's capacity), have %v", running)
	}

	// Every gang left out carries a reason, on its pods and on its PodGroup.
	pgc := podGroupClient(t)
	var problem string
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		problem = ""
		_, pods, err := boundByGang(ctx, ns)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if p.Spec.NodeName != "" {
				continue
			}
			var msg string
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					msg = c.Message
				}
			}
			if !strings.Contains(msg, "gang "+ns+"/") {
				problem = fmt.Sprintf("pending pod %s has no gang reason: %q", p.Name, msg)
				return false, nil
			}
		}
		for g := 0; g < gangs; g++ {
			name := fmt.Sprintf("g%d", g)
			if slices.Contains(running, name) {
				continue
			}
			pg, err := pgc.SchedulingV1alpha1().PodGroups(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if pg.Status.Phase != schedv1alpha1.PodGroupPending || !strings.Contains(pg.Annotations[gang.MessageAnnotation], "needs 3 pods x 2 cpu, 1Gi memory on nodes with it-gang=true") {
				problem = fmt.Sprintf("waiting PodGroup %s: phase %q, message %q", name, pg.Status.Phase, pg.Annotations[gang.MessageAnnotation])
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("%s (%v)", problem, err)
	}

	// Deleting a running gang admits a waiting one within seconds.
	gone := running[0]
	zero := int64(0)
	for m := 0; m < members; m++ {
		if err := cp.Client.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("%s-m%d", gone, m), metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	var after []string
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		bound, _, err := boundByGang(ctx, ns)
		if err != nil {
			return false, err
		}
		after = whole(bound)
		return len(after) == 2 && !slices.Contains(after, gone), nil
	}); err != nil {
		t.Fatalf("after deleting %s: whole gangs %v, want another one admitted", gone, after)
	}
	t.Logf("deleting %s admitted the next gang in %v", gone, time.Since(deleted).Round(10*time.Millisecond))

	// The gang that can never fit is marked failed once its 6 s have passed.
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pg, err := pgc.SchedulingV1alpha1().PodGroups(ns).Get(ctx, "never", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		problem = fmt.Sprintf("phase %q, message %q", pg.Status.Phase, pg.Annotations[gang.MessageAnnotation])
		return pg.Status.Phase == schedv1alpha1.PodGroupFailed &&
			strings.Contains(pg.Annotations[gang.MessageAnnotation], "timed out after 6s: gang "+ns+"/never needs 2 pods x 5 cpu, 1Gi memory"), nil
	}); err != nil {
		t.Fatalf("PodGroup never: %s (%v)", problem, err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "PodGroup" && e.Regarding.Name == "never" && e.Reason == gang.EventReasonTimedOut {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("no %s event on PodGroup never: %v", gang.EventReasonTimedOut, err)
	}
}

// A restart (or failover) finds part of a gang bound: those members stay, the rest is
// planned and bound.
func TestGangRestartKeepsBoundMembers(t *testing.T) {
	ctx := context.Background()
	createNodes(t, gangNode("it-gang-r1", "4"), gangNode("it-gang-r2", "4"))
	ns := testNamespace(t)
	createPodGroup(t, ns, "half", 4, 60)
	for m := 0; m < 4; m++ {
		createPod(t, gangMember(ns, "half", fmt.Sprintf("half-m%d", m), "2"))
	}
	// Members 0 and 1 were bound by the scheduler that went away.
	for m, node := range []string{"it-gang-r1", "it-gang-r2"} {
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("half-m%d", m)},
			Target: corev1.ObjectReference{Kind: "Node", Name: node}}
		if err := cp.Client.CoreV1().Pods(ns).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	startScheduler(t, nil)
	for m := 2; m < 4; m++ {
		waitForNode(t, ns, fmt.Sprintf("half-m%d", m), 30*time.Second)
	}
	for m, node := range []string{"it-gang-r1", "it-gang-r2"} {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("half-m%d", m), metav1.GetOptions{})
		if err != nil || p.Spec.NodeName != node {
			t.Errorf("member bound before the restart moved or vanished: %v %v", p.Spec.NodeName, err)
		}
	}
	if _, err := podGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "half", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Fatal("PodGroup vanished")
	}
}

// A session of a team whose own pool is GPU nodes: its GPU worker goes to the team's pool, and
// its CPU notebook, which GPUAffinity keeps off GPU nodes, to a shared node. The gang does not
// fit the members' best TeamPool tiers, so it is planned over every tier they may use.
func TestGangBeyondTheBestTeamPoolTier(t *testing.T) {
	ctx := context.Background()
	createPool(t, workbenchClient(t), "it-gang-team", teamPoolSpec("ml", "gangteam", false))
	gpuNode := gpuTestNode("it-gang-gpu-1", "Tesla-T4", 2)
	gpuNode.Labels["it-pool"] = "gangteam"
	createNodes(t, gpuNode, readyNode("it-gang-cpu-1", map[corev1.ResourceName]string{"cpu": "4", "memory": "16Gi", "pods": "110"}))
	startScheduler(t, nil)
	ns := testNamespace(t)
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"ml"}}}`, "workbench.dev/team")
	if _, err := cp.Client.CoreV1().Namespaces().Patch(ctx, ns, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	createPodGroup(t, ns, "session", 2, 60)
	notebook := workbenchPod(ns, "notebook", "", nil)
	worker := workbenchPod(ns, "worker", "1", nil)
	for _, p := range []*corev1.Pod{notebook, worker} {
		p.Labels = map[string]string{gang.GroupLabel: "session"}
		createPod(t, p)
	}
	if got := waitForNode(t, ns, "worker", 30*time.Second); got != "it-gang-gpu-1" {
		t.Errorf("GPU worker on %s, want the team's GPU node it-gang-gpu-1", got)
	}
	if got := waitForNode(t, ns, "notebook", 30*time.Second); got != "it-gang-cpu-1" {
		t.Errorf("CPU notebook on %s, want the shared CPU node it-gang-cpu-1", got)
	}
}
