package sandbox

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

// Outcome is where the scheduler left one pod.
type Outcome struct {
	Pod      *corev1.Pod
	Node     string // set when bound
	Reason   string // the scheduler's message when unschedulable
	Decided  bool
	Excluded bool // spec.schedulerName names another scheduler
}

// ExpectedPods is how many pods the scenario's objects produce with the in-process controllers.
func ExpectedPods(s *Scenario) int {
	n := 0
	for _, u := range s.Objects {
		switch u.GetKind() {
		case "Pod":
			n++
		case "Job":
			parallelism := intField(u, 1, "spec", "parallelism")
			completions := intField(u, parallelism, "spec", "completions")
			n += min(parallelism, completions)
		case "Deployment", "ReplicaSet":
			n += intField(u, 1, "spec", "replicas")
		}
	}
	return n
}

func intField(u *unstructured.Unstructured, def int, path ...string) int {
	v, found, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !found {
		return def
	}
	switch x := v.(type) {
	case int64:
		return int(x)
	case float64:
		return int(x)
	}
	return def
}

// WaitForDecisions polls until at least expected pods exist in namespace (all namespaces when
// empty) and the scheduler has bound or rejected every pod addressed to it, or until timeout.
// It returns the outcomes either way.
func WaitForDecisions(ctx context.Context, client kubernetes.Interface, namespace, scheduler string, expected int, timeout time.Duration) ([]Outcome, error) {
	var outcomes []Outcome
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		outcomes = outcomes[:0]
		done := len(pods.Items) >= expected
		for i := range pods.Items {
			o := classify(&pods.Items[i], scheduler)
			outcomes = append(outcomes, o)
			if !o.Decided && !o.Excluded {
				done = false
			}
		}
		return done, nil
	})
	sort.Slice(outcomes, func(i, j int) bool {
		a, b := outcomes[i].Pod, outcomes[j].Pod
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return outcomes, err
}

func classify(pod *corev1.Pod, scheduler string) Outcome {
	o := Outcome{Pod: pod}
	switch {
	case pod.Spec.NodeName != "":
		o.Node, o.Decided = pod.Spec.NodeName, true
	case pod.Spec.SchedulerName != scheduler:
		o.Excluded = true
	default:
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
				o.Reason, o.Decided = c.Message, true
				if o.Reason == "" {
					o.Reason = c.Reason
				}
			}
		}
	}
	return o
}

type groupUsage struct {
	nodes, pods int
	req, alloc  corev1.ResourceList
}

// WriteReport prints a per-node-group summary, then the pods the scheduler could not place
// with its reason, then the pods it left to other schedulers.
func WriteReport(w io.Writer, scenario string, nodes []corev1.Node, outcomes []Outcome, waitErr error) {
	groupOf := map[string]string{}
	groups := map[string]*groupUsage{}
	for _, n := range nodes {
		g := NodeGroup(&n)
		groupOf[n.Name] = g
		u := groups[g]
		if u == nil {
			u = &groupUsage{req: corev1.ResourceList{}, alloc: corev1.ResourceList{}}
			groups[g] = u
		}
		u.nodes++
		addResources(u.alloc, n.Status.Allocatable)
	}
	var bound, unschedulable, excluded, pending []Outcome
	for _, o := range outcomes {
		switch {
		case o.Node != "":
			bound = append(bound, o)
			if u := groups[groupOf[o.Node]]; u != nil {
				u.pods++
				addResources(u.req, podRequests(o.Pod))
			}
		case o.Excluded:
			excluded = append(excluded, o)
		case o.Decided:
			unschedulable = append(unschedulable, o)
		default:
			pending = append(pending, o)
		}
	}

	fmt.Fprintf(w, "Placement report: scenario %q\n", scenario)
	fmt.Fprintf(w, "%d pods: %d bound, %d unschedulable, %d undecided, %d left to other schedulers\n\n",
		len(outcomes), len(bound), len(unschedulable), len(pending), len(excluded))

	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE GROUP\tNODES\tPODS\tCPU REQ/ALLOC\tMEMORY REQ/ALLOC\tGPU REQ/ALLOC")
	for _, g := range names {
		u := groups[g]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", g, u.nodes, u.pods,
			ratio(u.req, u.alloc, corev1.ResourceCPU), ratio(u.req, u.alloc, corev1.ResourceMemory), ratio(u.req, u.alloc, GPUResource))
	}
	tw.Flush()

	if len(unschedulable) > 0 {
		fmt.Fprintln(w, "\nUnschedulable pods (the scheduler's reason):")
		for _, o := range unschedulable {
			fmt.Fprintf(w, "  %s/%s: %s\n", o.Pod.Namespace, o.Pod.Name, strings.TrimSpace(o.Reason))
		}
	}
	if len(pending) > 0 {
		fmt.Fprintf(w, "\nUndecided pods (no decision before the wait ended: %v):\n", waitErr)
		for _, o := range pending {
			fmt.Fprintf(w, "  %s/%s\n", o.Pod.Namespace, o.Pod.Name)
		}
	}
	if len(excluded) > 0 {
		fmt.Fprintln(w, "\nLeft to other schedulers:")
		for _, o := range excluded {
			fmt.Fprintf(w, "  %s/%s (schedulerName %s)\n", o.Pod.Namespace, o.Pod.Name, o.Pod.Spec.SchedulerName)
		}
	}
}

// NodeGroup names the group a node is reported under.
func NodeGroup(n *corev1.Node) string {
	if g := n.Labels[NodeGroupLabel]; g != "" {
		return g
	}
	if z := n.Labels[ZoneLabel]; z != "" {
		return "zone " + z
	}
	return "(ungrouped)"
}

func podRequests(pod *corev1.Pod) corev1.ResourceList {
	// The scheduler's own arithmetic: init containers, overhead and pod-level resources count.
	return resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

func addResources(dst, src corev1.ResourceList) {
	for name, q := range src {
		cur := dst[name]
		cur.Add(q)
		dst[name] = cur
	}
}

func ratio(req, alloc corev1.ResourceList, name corev1.ResourceName) string {
	a, ok := alloc[name]
	if !ok || a.IsZero() {
		return "-"
	}
	r := req[name]
	return fmt.Sprintf("%s/%s (%.0f%%)", short(r, name), short(a, name), 100*float64(r.MilliValue())/float64(a.MilliValue()))
}

func short(q resource.Quantity, name corev1.ResourceName) string {
	if name == corev1.ResourceMemory {
		return fmt.Sprintf("%.0fGi", float64(q.Value())/(1<<30))
	}
	if name == corev1.ResourceCPU {
		return fmt.Sprintf("%g", float64(q.MilliValue())/1000)
	}
	return q.String()
}

// WriteTeamReport prints, per team, how many of its bound pods landed in each tier: own pool,
// an ancestor's, shared (or no pool), another team's lendable pool.
func WriteTeamReport(w io.Writer, pools []workbenchv1alpha1.ResourcePool, namespaces []corev1.Namespace, nodes []corev1.Node, outcomes []Outcome) {
	if len(pools) == 0 {
		return
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	poolOf := map[string]*workbenchv1alpha1.ResourcePool{}
	for _, n := range nodes {
		poolOf[n.Name] = orgtree.PoolOf(n.Labels, pools)
	}
	tiers := []string{"own", "ancestor", "shared", "unpooled", "lent"}
	counts := map[string]map[string]int{}
	for _, o := range outcomes {
		if o.Node == "" {
			continue
		}
		t, err := orgtree.TeamOf(o.Pod.Labels, o.Pod.Namespace, nsLabels[o.Pod.Namespace])
		if err != nil {
			continue
		}
		tier := "unpooled"
		if p := poolOf[o.Node]; p != nil {
			owner, _ := orgtree.ParseOwner(p.Spec.Owner)
			tier = orgtree.TierName(orgtree.Rank(t, owner, p.Spec.Lendable))
		}
		team := t.String()
		if team == "" {
			team = "(no team)"
		}
		if counts[team] == nil {
			counts[team] = map[string]int{}
		}
		counts[team][tier]++
	}
	teams := make([]string, 0, len(counts))
	for t := range counts {
		teams = append(teams, t)
	}
	sort.Strings(teams)
	fmt.Fprintf(w, "\nPlacements by team and tier (%d ResourcePools; kubectl get resourcepools shows their figures):\n", len(pools))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tOWN\tANCESTOR\tSHARED\tNO POOL\tLENT")
	for _, team := range teams {
		fmt.Fprintf(tw, "%s", team)
		for _, tier := range tiers {
			fmt.Fprintf(tw, "\t%d", counts[team][tier])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// WriteGangReport prints, per PodGroup, whether its gang was placed (minMember of its pods
// bound) and on which nodes, then why each gang that was not placed is waiting: the PodGroup's
// workbench.dev/gang-message annotation, or else a member's PodScheduled message.
func WriteGangReport(w io.Writer, groups []schedv1alpha1.PodGroup, outcomes []Outcome) {
	if len(groups) == 0 {
		return
	}
	membersOf := map[string][]Outcome{}
	for _, o := range outcomes {
		if name := o.Pod.Labels[PodGroupLabel]; name != "" {
			key := o.Pod.Namespace + "/" + name
			membersOf[key] = append(membersOf[key], o)
		}
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].Namespace != groups[j].Namespace {
			return groups[i].Namespace < groups[j].Namespace
		}
		return groups[i].Name < groups[j].Name
	})
	type waiting struct{ gang, phase, reason string }
	var notPlaced []waiting
	noun := "PodGroups"
	if len(groups) == 1 {
		noun = "PodGroup"
	}
	fmt.Fprintf(w, "\nGangs (%d %s; minMember of a gang's pods are placed together, or none):\n", len(groups), noun)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GANG\tKIND\tMIN MEMBER\tPODS\tBOUND\tRESULT\tNODES")
	for _, pg := range groups {
		key := pg.Namespace + "/" + pg.Name
		members := membersOf[key]
		bound, undecided := 0, 0
		var nodes []string
		reason := ""
		for _, o := range members {
			switch {
			case o.Node != "":
				bound++
				if !slices.Contains(nodes, o.Node) {
					nodes = append(nodes, o.Node)
				}
			case !o.Decided:
				undecided++
			case reason == "":
				reason = strings.TrimSpace(o.Reason)
			}
		}
		sort.Strings(nodes)
		result := "not placed"
		switch {
		case bound >= int(pg.Spec.MinMember):
			result = "placed"
		case undecided > 0:
			result = "undecided"
		case bound > 0:
			// What Gang exists to prevent; shown as it is if it ever happens.
			result = "partly placed"
		}
		kind := "batch"
		if pg.Labels[SessionLabel] == "true" {
			kind = "session"
		}
		where := "-"
		if len(nodes) > 0 {
			where = strings.Join(nodes, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", key, kind, pg.Spec.MinMember, len(members), bound, result, where)
		if result != "placed" {
			if msg := pg.Annotations[GangMessageAnnotation]; msg != "" {
				reason = msg
			}
			if reason == "" {
				reason = "no reason recorded yet"
			}
			phase := string(pg.Status.Phase)
			if phase == "" {
				phase = "no phase"
			}
			notPlaced = append(notPlaced, waiting{key, phase, reason})
		}
	}
	tw.Flush()
	if len(notPlaced) > 0 {
		fmt.Fprintf(w, "\nGangs not placed (the PodGroup's phase and %s annotation):\n", GangMessageAnnotation)
		for _, g := range notPlaced {
			fmt.Fprintf(w, "  %s (%s): %s\n", g.gang, g.phase, g.reason)
		}
	}
}
