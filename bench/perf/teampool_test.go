package perf

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"
	"sigs.k8s.io/yaml"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	configv1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/v1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
)

// TeamPool needs its ResourcePool CRD in the apiserver and schedules nothing until it has
// loaded the pools; Gang likewise needs the PodGroup CRD before it admits any gang.
// scheduler_perf starts the scheduler right after the apiserver, and the first hook that can
// reach the cluster (WithPrepareFn) runs after that, before the workload's first op. So the
// prepare hook installs the CRDs, for every workload since the shipped profile runs TeamPool and
// Gang in all of them, and waits until each TeamPool and Gang instance has loaded them.
// scheduler_perf passes the scheduler no dynamic informer factory, so ResourcePool and PodGroup
// events do not requeue pods here; the workloads create pools and PodGroups before their pods.

// adherence is the TeamPool workload's check, recorded in the run record.
var adherence *perfrun.Adherence

// builtPlugins are the instances of the plugins with custom resources (TeamPool, Gang) the
// current workload's scheduler built.
var builtPlugins struct {
	sync.Mutex
	plugins []fwk.Plugin
}

// trackPlugins wraps the named plugins' factories to keep the instances they build.
func trackPlugins(r frameworkruntime.Registry, names ...string) frameworkruntime.Registry {
	for _, name := range names {
		factory := r[name]
		r[name] = func(ctx context.Context, args runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			pl, err := factory(ctx, args, h)
			if err == nil {
				builtPlugins.Lock()
				builtPlugins.plugins = append(builtPlugins.plugins, pl)
				builtPlugins.Unlock()
			}
			return pl, err
		}
	}
	return r
}

// prepareCluster is scheduler_perf's prepare hook for every workload.
func prepareCluster(tCtx ktesting.TContext) error {
	builtPlugins.Lock()
	plugins := builtPlugins.plugins
	builtPlugins.plugins = nil
	builtPlugins.Unlock()
	if err := installCRDs(tCtx); err != nil {
		return err
	}
	if err := waitForPlugins(tCtx, plugins); err != nil {
		return err
	}
	if strings.Contains(tCtx.Name(), "/Sessions_") {
		if err := watchGangs(tCtx); err != nil {
			return err
		}
	}
	if strings.Contains(tCtx.Name(), "/GPUFragmentation_") {
		checkGPUFragmentationAfterRun(tCtx)
	}
	if strings.Contains(tCtx.Name(), "/GPUSharing_") {
		checkGPUSharingAfterRun(tCtx)
	}
	if strings.Contains(tCtx.Name(), "/TeamPool_") {
		// Cleanups run last registered first: this one before scheduler_perf stops the
		// scheduler and the apiserver, after the workload's own (the barrier has passed).
		tCtx.CleanupCtx(func(tCtx ktesting.TContext) {
			if tCtx.Failed() {
				return
			}
			// Custom resources speak JSON only; the harness's connection may prefer protobuf.
			cfg := rest.CopyConfig(tCtx.RESTConfig())
			cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
			a, err := checkAdherence(tCtx, tCtx.Client(), versioned.NewForConfigOrDie(cfg))
			if err != nil {
				tCtx.Errorf("checking TeamPool adherence: %v", err)
				return
			}
			adherence = a
			byTier := make([]string, 0, len(a.ByTier))
			for _, tier := range tierOrder {
				if n := a.ByTier[tier]; n > 0 {
					byTier = append(byTier, fmt.Sprintf("%s %d", tier, n))
				}
			}
			fmt.Printf("TeamPool adherence %s: %d of %d pods (%.2f %%) in their best tier with room; placed: %s\n",
				tCtx.Name(), a.InBestTier, a.Pods, 100*a.Share(), strings.Join(byTier, ", "))
			for _, v := range a.Violations {
				fmt.Printf("  not in best tier: %s\n", v)
			}
		})
	}
	return nil
}

// installCRDs creates the CRDs embedded in the manifests package and waits until they are
// Established and served, as pkg/controlplane does for the sandbox.
func installCRDs(tCtx ktesting.TContext) error {
	files, err := fs.Glob(manifests.CRDs, "crds/*.yaml")
	if err != nil {
		return err
	}
	client := tCtx.APIExtensions().ApiextensionsV1().CustomResourceDefinitions()
	var names []string
	for _, file := range files {
		data, err := fs.ReadFile(manifests.CRDs, file)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return fmt.Errorf("decoding embedded CRD %s: %w", path.Base(file), err)
		}
		if _, err := client.Create(tCtx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CustomResourceDefinition %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(tCtx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			crd, err := client.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
				return false, nil
			}
			for _, v := range crd.Spec.Versions {
				if _, err := tCtx.Client().Discovery().ServerResourcesForGroupVersion(crd.Spec.Group + "/" + v.Name); v.Served && err != nil {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("waiting for CustomResourceDefinition %s: %w", name, err)
		}
	}
	return nil
}

// waitForPlugins waits until every tracked instance has loaded its custom resources, nodes and
// pods. Their informers started before the CRDs existed and retry with backoff (up to ~30 s).
func waitForPlugins(tCtx ktesting.TContext, plugins []fwk.Plugin) error {
	type syncer interface{ Synced() bool }
	for _, pl := range plugins {
		s, ok := pl.(syncer)
		if !ok {
			return fmt.Errorf("%s (%T) does not report whether it has synced (Synced() bool)", pl.Name(), pl)
		}
		start := time.Now()
		if err := wait.PollUntilContextTimeout(tCtx, 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			return s.Synced(), nil
		}); err != nil {
			return fmt.Errorf("waiting for %s to load its custom resources: %w", pl.Name(), err)
		}
		tCtx.Logf("%s loaded its custom resources %s after the CRDs were installed", pl.Name(), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Ranks order a team's tiers, lower is better, as TeamPool documents them: the team's own pools
// (0), its ancestors' (1 per level up), shared pools (with nodes in no pool, under the shipped
// unpooledNodes: Shared), other teams' lendable pools; other teams' other pools are forbidden.
const (
	rankShared    = 1000
	rankLent      = 1001
	rankLast      = 1002
	rankForbidden = 1 << 30
)

var tierOrder = []string{"own", "ancestor", "shared", "unpooled", "lent", "forbidden"}

type checkedPool struct {
	name        string
	owner       []string
	lendable    bool
	selector    labels.Selector
	specificity int
}

type checkedNode struct {
	name               string
	pool               *checkedPool
	freeMilliCPU, free int64 // free memory in bytes
	freePods           int64
}

// checkAdherence reads pools, nodes, namespaces and pods from the apiserver and checks each bound
// pod against its team's tiers.
func checkAdherence(ctx context.Context, kube kubernetes.Interface, wb versioned.Interface) (*perfrun.Adherence, error) {
	unpooledRank, err := shippedUnpooledRank()
	if err != nil {
		return nil, err
	}
	poolList, err := wb.WorkbenchV1alpha1().ResourcePools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var pools []*checkedPool
	for _, rp := range poolList.Items {
		owner, err := teamPath(rp.Spec.Owner, "/")
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", rp.Name, err)
		}
		sel, err := metav1.LabelSelectorAsSelector(&rp.Spec.NodeSelector)
		if err != nil || sel.Empty() {
			continue // TeamPool ignores it too
		}
		pools = append(pools, &checkedPool{name: rp.Name, owner: owner, lendable: rp.Spec.Lendable, selector: sel,
			specificity: len(rp.Spec.NodeSelector.MatchLabels) + len(rp.Spec.NodeSelector.MatchExpressions)})
	}
	// A node matching several pools belongs to the most specific, then the first by name.
	slices.SortFunc(pools, func(a, b *checkedPool) int {
		return cmp.Or(cmp.Compare(b.specificity, a.specificity), cmp.Compare(a.name, b.name))
	})

	nodeList, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nodes := map[string]*checkedNode{}
	ordered := make([]*checkedNode, 0, len(nodeList.Items))
	for i := range nodeList.Items {
		node := &nodeList.Items[i]
		alloc := node.Status.Allocatable
		n := &checkedNode{name: node.Name, freeMilliCPU: alloc.Cpu().MilliValue(), free: alloc.Memory().Value(), freePods: alloc.Pods().Value()}
		for _, p := range pools {
			if p.selector.Matches(labels.Set(node.Labels)) {
				n.pool = p
				break
			}
		}
		nodes[node.Name] = n
		ordered = append(ordered, n)
	}
	nsList, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nsTeams := map[string]string{}
	for _, ns := range nsList.Items {
		if t, ok := ns.Labels[teampool.TeamLabel]; ok {
			nsTeams[ns.Name] = t
		}
	}
	podList, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var bound []*v1.Pod
	for i := range podList.Items {
		pod := &podList.Items[i]
		if pod.Spec.NodeName == "" || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			continue
		}
		n := nodes[pod.Spec.NodeName]
		if n == nil {
			return nil, fmt.Errorf("pod %s/%s is bound to unknown node %s", pod.Namespace, pod.Name, pod.Spec.NodeName)
		}
		r := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
		n.freeMilliCPU -= r.Cpu().MilliValue()
		n.free -= r.Memory().Value()
		n.freePods--
		bound = append(bound, pod)
	}

	rank := func(team []string, n *checkedNode) int {
		switch {
		case n.pool == nil:
			return unpooledRank
		case len(n.pool.owner) == 0:
			return rankShared
		}
		if len(n.pool.owner) <= len(team) && slices.Equal(n.pool.owner, team[:len(n.pool.owner)]) {
			return len(team) - len(n.pool.owner)
		}
		if n.pool.lendable {
			return rankLent
		}
		return rankForbidden
	}
	type bestKey struct {
		team          string
		milliCPU, mem int64
	}
	type best struct {
		rank int
		node *checkedNode
	}
	bestWithRoom := map[bestKey]best{}
	a := &perfrun.Adherence{ByTier: map[string]int{}}
	for _, pod := range bound {
		label, ok := pod.Labels[teampool.TeamLabel]
		if !ok {
			label = nsTeams[pod.Namespace]
		}
		team, err := teamPath(label, ".")
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		r := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
		key := bestKey{label, r.Cpu().MilliValue(), r.Memory().Value()}
		b, ok := bestWithRoom[key]
		if !ok {
			b = best{rank: rankForbidden}
			for _, n := range ordered {
				if n.freeMilliCPU >= key.milliCPU && n.free >= key.mem && n.freePods >= 1 {
					if nr := rank(team, n); nr < b.rank {
						b = best{nr, n}
					}
				}
			}
			bestWithRoom[key] = b
		}
		n := nodes[pod.Spec.NodeName]
		got := rank(team, n)
		a.Pods++
		a.ByTier[tierName(got, n.pool == nil)]++
		if got != rankForbidden && got <= b.rank {
			a.InBestTier++
			continue
		}
		if len(a.Violations) < 10 {
			better := "no tier it may use has room"
			if b.node != nil {
				better = fmt.Sprintf("node %s (%s tier) has room", b.node.name, tierName(b.rank, b.node.pool == nil))
			}
			a.Violations = append(a.Violations, fmt.Sprintf("pod %s/%s of team %q (cpu %dm) on node %s (%s tier); %s",
				pod.Namespace, pod.Name, label, key.milliCPU, n.name, tierName(got, n.pool == nil), better))
		}
	}
	return a, nil
}

func tierName(rank int, unpooled bool) string {
	switch {
	case rank == rankForbidden:
		return "forbidden"
	case unpooled:
		return "unpooled"
	case rank == 0:
		return "own"
	case rank < rankShared:
		return "ancestor"
	case rank == rankShared:
		return "shared"
	case rank == rankLent:
		return "lent"
	}
	return "last"
}

// teamPath splits a team path; each segment must be a non-empty name.
func teamPath(s, sep string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	segments := strings.Split(s, sep)
	for _, seg := range segments {
		if seg == "" {
			return nil, fmt.Errorf("team %q has an empty segment", s)
		}
	}
	return segments, nil
}

// shippedUnpooledRank reads where the shipped profile ranks nodes in no pool.
func shippedUnpooledRank() (int, error) {
	var cfg struct {
		Profiles []struct {
			PluginConfig []struct {
				Name string `json:"name"`
				Args struct {
					UnpooledNodes string `json:"unpooledNodes"`
				} `json:"args"`
			} `json:"pluginConfig"`
		} `json:"profiles"`
	}
	if err := yaml.Unmarshal(manifests.SchedulerConfig, &cfg); err != nil {
		return 0, err
	}
	unpooled := configv1.DefaultUnpooledNodes
	for _, p := range cfg.Profiles {
		for _, pc := range p.PluginConfig {
			if pc.Name == teampool.Name && pc.Args.UnpooledNodes != "" {
				unpooled = pc.Args.UnpooledNodes
			}
		}
	}
	switch unpooled {
	case "Shared":
		return rankShared, nil
	case "Last":
		return rankLast, nil
	}
	return 0, fmt.Errorf("unknown unpooledNodes %q in the shipped profile", unpooled)
}
