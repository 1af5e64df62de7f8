package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
)

const (
	shippedNamespace      = "workbench-system"
	shippedServiceAccount = "workbench-scheduler"
	shippedLease          = "workbench-scheduler"
)

// The binary, started with the shipped configuration and nothing but the shipped
// ServiceAccount's token (the apiserver enforces RBAC), takes its lease, schedules a pod,
// records events, keeps a ResourcePool's status and serves /metrics with delegated auth. A rule
// missing from manifests/ fails one of these.
func TestBinaryRunsUnderTheShippedServiceAccount(t *testing.T) {
	ctx := context.Background()
	b := setUpShippedBinary(t)
	deleteShippedLeaseAtCleanup(t)
	bin := b.start(t)
	poll := func(what string, timeout time.Duration, cond func(context.Context) (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, cond); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll("the binary did not take its lease", time.Minute, func(ctx context.Context) (bool, error) {
		l, err := cp.Client.CoordinationV1().Leases(shippedNamespace).Get(ctx, shippedLease, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", nil
	})

	client := workbenchClient(t)
	createPool(t, client, "it-sa-pool", teamPoolSpec("", "sa", false))
	createNodes(t, poolTestNode("it-sa-node", "sa"))
	ns := testNamespace(t)
	createPod(t, cpuPod(ns, "under-sa", "1", nil))
	if got := waitForNode(t, ns, "under-sa", time.Minute); got != "it-sa-node" {
		t.Errorf("pod bound to %s, want it-sa-node", got)
	}
	poll("no Scheduled event recorded by the binary", 30*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "under-sa" && e.Reason == "Scheduled" {
				return true, nil
			}
		}
		return false, nil
	})
	poll("the leader did not write the pool's status", 45*time.Second, func(ctx context.Context) (bool, error) {
		p, err := client.WorkbenchV1alpha1().ResourcePools().Get(ctx, "it-sa-pool", metav1.GetOptions{})
		return err == nil && p.Status.Nodes == 1 && p.Status.Allocated.CPU.String() == "1" &&
			len(p.Status.Conditions) > 0 && p.Status.Conditions[0].Type == workbenchv1alpha1.ConditionReady, nil
	})

	// Gang: PodGroups listed and watched, their status and message written.
	createPodGroup(t, ns, "sa-gang", 1, 60)
	createPod(t, cpuPod(ns, "sa-gang-0", "1", map[string]string{gang.GroupLabel: "sa-gang"}))
	waitForNode(t, ns, "sa-gang-0", time.Minute)
	poll("the binary did not write the PodGroup's phase and message", 30*time.Second, func(ctx context.Context) (bool, error) {
		pg, err := podGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "sa-gang", metav1.GetOptions{})
		return err == nil && pg.Status.Phase == schedv1alpha1.PodGroupScheduling && pg.Annotations[gang.MessageAnnotation] != "", nil
	})

	// /metrics: the binary asks the apiserver (TokenReview, SubjectAccessReview) with its own
	// identity whether the caller may read it.
	get := func(token string) (int, string) { return bin.get("/metrics", token) }
	var code int
	var body string
	poll("GET /metrics as the cluster admin", 30*time.Second, func(context.Context) (bool, error) {
		code, body = get(cp.Config.BearerToken)
		return code == http.StatusOK, nil
	})
	for _, m := range []string{"workbench_resourcepool_capacity", "workbench_gang_admission_decision_seconds", "workbench_gang_gangs_total", "workbench_gang_waiting"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if code, _ := get(b.token); code != http.StatusForbidden {
		t.Errorf("GET /metrics as the scheduler's own ServiceAccount = %d, want 403 (it is not granted /metrics)", code)
	}
	if code, _ := get(""); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /metrics = %d, want 401 or 403", code)
	}
	// Informers log a denied list and retry: a missing rule shows here even when it cost nothing
	// visible above.
	// Least privilege: our lease only, nobody else's.
	user := fmt.Sprintf("system:serviceaccount:%s:%s", shippedNamespace, shippedServiceAccount)
	for _, c := range []struct {
		verb, namespace, resource, name string
		allowed                         bool
	}{
		{"update", shippedNamespace, "leases", shippedLease, true},
		{"update", "kube-system", "leases", "kube-scheduler", false},
		{"update", shippedNamespace, "leases", "someone-elses", false},
		{"get", "kube-system", "secrets", "", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + shippedNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Namespace: c.namespace, Group: "coordination.k8s.io",
				Resource: c.resource, Name: c.name}}}
		if c.resource == "secrets" {
			sar.Spec.ResourceAttributes.Group = ""
		}
		res, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed != c.allowed {
			t.Errorf("%s %s %s/%s allowed = %v, want %v", c.verb, c.resource, c.namespace, c.name, res.Status.Allowed, c.allowed)
		}
	}
	if strings.Contains(bin.out.String(), "is forbidden") {
		t.Errorf("the binary was denied something:\n%s", grepLines(bin.out.String(), "is forbidden"))
	}
}

func grepLines(s, substr string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
