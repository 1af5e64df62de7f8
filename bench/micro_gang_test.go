package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pkgruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	kcache "k8s.io/client-go/tools/cache"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	resourceslicetracker "k8s.io/dynamic-resource-allocation/resourceslice/tracker"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/features"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/dynamicresources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	"k8s.io/kubernetes/pkg/scheduler/util/assumecache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"
	pginformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config"
	_ "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/config/scheme"
	wbfake "github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned/fake"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/gang"
	"github.com/workbench-scheduler/workbench-scheduler/plugins/teampool"
)

// Gang admission at 7,500 nodes and 200,000 running pods: one admission decision per
// iteration, i.e. Gang's PreFilter for the first member of a new 8-member GPU gang, which plans
// a node for all 8 members on one snapshot by running the profile's PreFilter and Filter
// plugins per distinct member spec over every node. Run with make bench-micro MICRO=Gang.
//
//   - Framework. The real framework (frameworkruntime.NewFramework) built from the shipped
//     profile (manifests/scheduler-config.yaml, decoded and defaulted by the scheduler's scheme)
//     with upstream's in-tree registry plus ours: every plugin of the profile runs, as in the
//     binary. Gang and TeamPool are built through NewWithClient with fake clientsets for their
//     custom resources (no ResourcePools, so TeamPool skips).
//   - Cluster. 1 node in 5 has 8 GPUs (Tesla-T4, A100-80GB or the special H100, with GPU
//     Feature Discovery's product and memory labels); GPU node j runs j mod 9 one-GPU pods, so
//     free GPUs per node range from 8 to 0. The other pods (1 CPU, 4 GiB each) fill the CPU
//     nodes to 32 of 64 CPUs and 128 of 512 GiB. The pods live in the snapshot, which is what
//     PreFilter and Filter read; the informers hold the nodes and the gangs' members (Gang's
//     member index) only.
//   - Gangs. A PodGroup with minMember 8 (session label) and 8 pending members of 1 GPU, 4 CPU
//     and 16 GiB each: "mixed" is 1 notebook plus 7 identical workers (two member specs, so two
//     Filter passes over every node), "identical" is 8 identical workers (one pass).
//   - Fresh decision per iteration. Every iteration uses a gang not planned before (created,
//     with its members, before the timed loop and seen by the plugin's informers). After the
//     timed call, untimed, its members go through the plugin's own PreFilter (steering),
//     Reserve and Permit until the gang is complete, which releases the plan's reservation, so
//     every decision sees the same cluster.
//
// cpu-ms/op is the process's CPU time (getrusage, user + system) over the timed calls. The
// planner filters nodes on the framework's 16 goroutines, so a decision uses more CPU than wall
// time (both cores here), and the target is stated in CPU.
const (
	gangNodes    = 7500
	gangGPUEvery = 5
	gangRunning  = 200_000
	gangMembers  = 8
	gangNS       = "gang-bench"
)

type gangBench struct {
	pl       *gang.Gang
	nodes    []fwk.NodeInfo
	kube     kubernetes.Interface
	pgs      pgclient.Interface
	seenPods atomic.Int64
	seenPGs  atomic.Int64
	next     int
}

// gangSnapshot builds the nodes and running pods described above.
func gangSnapshot() ([]*corev1.Node, *cache.Snapshot) {
	products := []string{"Tesla-T4", "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}
	var nodes, gpuNodes, cpuNodes []*corev1.Node
	for i := range gangNodes {
		name := fmt.Sprintf("n-%04d", i)
		if i%gangGPUEvery == 0 {
			n := benchNode(name, products[(i/gangGPUEvery)%len(products)], "64", 8)
			nodes, gpuNodes = append(nodes, n), append(gpuNodes, n)
		} else {
			n := benchNode(name, "", "64", 0)
			nodes, cpuNodes = append(nodes, n), append(cpuNodes, n)
		}
	}
	pods := make([]*corev1.Pod, 0, gangRunning)
	for j, n := range gpuNodes {
		for k := range j % 9 {
			p := withGPURequest(benchPod("running", fmt.Sprintf("gpu-%s-%d", n.Name, k), 1))
			p.UID = types.UID(p.Name)
			p.Spec.NodeName = n.Name
			pods = append(pods, p)
		}
	}
	for i := 0; len(pods) < gangRunning; i++ {
		p := benchPod("running", fmt.Sprintf("cpu-%06d", i), 0)
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resourceMilli(1000)
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("4Gi")
		p.UID = types.UID(p.Name)
		p.Spec.NodeName = cpuNodes[i%len(cpuNodes)].Name
		pods = append(pods, p)
	}
	return nodes, cache.NewSnapshot(pods, nodes)
}

// shippedProfile decodes the shipped KubeSchedulerConfiguration as the scheduler does (with
// defaults and our args) and returns its one profile.
func shippedProfile(b *testing.B) *schedconfig.KubeSchedulerProfile {
	obj, _, err := kubeschedulerscheme.Codecs.UniversalDecoder().Decode(manifests.SchedulerConfig, nil, nil)
	must(b, err)
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok || len(cfg.Profiles) != 1 {
		b.Fatalf("shipped config: want one KubeSchedulerConfiguration profile, got %T", obj)
	}
	return &cfg.Profiles[0]
}

func newGangBench(b *testing.B) *gangBench {
	// The framework counts its plugins in the scheduler's metrics, as the scheduler does.
	schedmetrics.Register()
	// scheduler-plugins' fake clientset predates watch-list: with it on, PodGroup informers
	// never sync (as in plugins/gang's tests).
	featuregatetesting.SetFeatureGateDuringTest(b, utilfeature.DefaultFeatureGate, "WatchListClient", false)
	_, ctx := ktesting.NewTestContext(b)
	ctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	nodes, snapshot := gangSnapshot()
	objects := make([]pkgruntime.Object, len(nodes))
	for i, n := range nodes {
		objects[i] = n
	}
	g := &gangBench{kube: clientsetfake.NewSimpleClientset(objects...), pgs: pgfake.NewSimpleClientset()}
	factory := informers.NewSharedInformerFactory(g.kube, 0)

	registry := frameworkplugins.NewInTreeRegistry()
	must(b, registry.Merge(app.Registry()))
	// The handle has no kubeconfig: the plugins with custom resources get fake clients.
	registry[gang.Name] = func(ctx context.Context, args pkgruntime.Object, h fwk.Handle) (fwk.Plugin, error) {
		pl, err := gang.NewWithClient(ctx, args.(*config.GangArgs), h, g.pgs)
		g.pl = pl
		return pl, err
	}
	registry[teampool.Name] = func(ctx context.Context, args pkgruntime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return teampool.NewWithClient(ctx, args.(*config.TeamPoolArgs), h, wbfake.NewSimpleClientset())
	}
	fh, err := frameworkruntime.NewFramework(ctx, registry, shippedProfile(b),
		frameworkruntime.WithSharedDRAManager(draManager(ctx, b, g.kube, factory)),
		frameworkruntime.WithClientSet(g.kube),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		// Admission re-activates a gang's members, as the scheduler's queue does for real.
		frameworkruntime.WithPodActivator(queue.NewTestQueue(ctx, nil)),
	)
	must(b, err)
	if g.pl == nil || fh == nil {
		b.Fatal("the shipped profile did not build the Gang plugin")
	}

	// Our own watchers tell when the gangs created below have reached the informers.
	_, err = factory.Core().V1().Pods().Informer().AddEventHandler(kcache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { g.seenPods.Add(1) },
	})
	must(b, err)
	pgFactory := pginformers.NewSharedInformerFactory(g.pgs, 0)
	_, err = pgFactory.Scheduling().V1alpha1().PodGroups().Informer().AddEventHandler(kcache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { g.seenPGs.Add(1) },
	})
	must(b, err)
	factory.Start(ctx.Done())
	pgFactory.Start(ctx.Done())
	pgFactory.WaitForCacheSync(ctx.Done())
	if !kcache.WaitForCacheSync(ctx.Done(), g.pl.Synced) {
		b.Fatal("Gang did not load pods, nodes and PodGroups")
	}
	g.nodes, err = snapshot.NodeInfos().List()
	must(b, err)
	return g
}

// draManager is the DRA manager the scheduler gives the framework (scheduler.New): the
// DynamicResources plugin consults it for pods with extended resources such as GPUs.
func draManager(ctx context.Context, b *testing.B, client kubernetes.Interface, factory informers.SharedInformerFactory) fwk.SharedDRAManager {
	if !utilfeature.DefaultFeatureGate.Enabled(features.DynamicResourceAllocation) {
		return nil
	}
	claims := assumecache.NewAssumeCache(klog.FromContext(ctx), factory.Resource().V1().ResourceClaims().Informer(), "ResourceClaim", "", nil)
	opts := resourceslicetracker.Options{
		EnableDeviceTaintRules:   utilfeature.DefaultFeatureGate.Enabled(features.DRADeviceTaintRules),
		EnableConsumableCapacity: utilfeature.DefaultFeatureGate.Enabled(features.DRAConsumableCapacity),
		SliceInformer:            factory.Resource().V1().ResourceSlices(),
		KubeClient:               client,
	}
	if opts.EnableDeviceTaintRules {
		opts.TaintInformer = factory.Resource().V1().DeviceTaintRules()
	}
	tracker, err := resourceslicetracker.StartTracker(ctx, opts)
	must(b, err)
	return dynamicresources.NewDRAManager(ctx, claims, tracker, factory)
}

// gangMember is one pending member: 1 GPU, 4 CPU, 16 GiB, labelled with its gang and role.
func gangMember(group, role string, i int, created time.Time) *corev1.Pod {
	p := withGPURequest(benchPod(gangNS, fmt.Sprintf("%s-%s-%d", group, role, i), 1))
	p.UID = types.UID(p.Name)
	p.CreationTimestamp = metav1.NewTime(created)
	p.Labels = map[string]string{gang.GroupLabel: group, "role": role}
	p.Spec.Containers[0].Name = role
	return p
}

// createGangs creates n new gangs (PodGroup and members) and waits until the informers have
// them. Objects go in one gang at a time: the fake clientsets' watch channels hold 100 events.
func (g *gangBench) createGangs(b *testing.B, n int, mixed bool) [][]*corev1.Pod {
	ctx := context.Background()
	out := make([][]*corev1.Pod, 0, n)
	wantPods, wantPGs := g.seenPods.Load(), g.seenPGs.Load()
	for range n {
		name := fmt.Sprintf("gang-%05d", g.next)
		g.next++
		created := time.Now()
		pg := &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: gangNS, Name: name, UID: types.UID(name),
				Labels: map[string]string{gang.SessionLabel: "true"}, CreationTimestamp: metav1.NewTime(created)},
			Spec: schedv1alpha1.PodGroupSpec{MinMember: gangMembers},
		}
		_, err := g.pgs.SchedulingV1alpha1().PodGroups(gangNS).Create(ctx, pg, metav1.CreateOptions{})
		must(b, err)
		members := make([]*corev1.Pod, 0, gangMembers)
		for i := range gangMembers {
			role := "worker"
			if mixed && i == 0 {
				role = "notebook"
			}
			p := gangMember(name, role, i, created)
			_, err := g.kube.CoreV1().Pods(gangNS).Create(ctx, p, metav1.CreateOptions{})
			must(b, err)
			members = append(members, p)
		}
		out = append(out, members)
		wantPods += gangMembers
		wantPGs++
		g.waitSeen(b, wantPods, wantPGs)
	}
	// Our handlers and the plugin's are notified of the same events by the same informers;
	// this leaves the plugin's time to catch up. Each decision is checked below regardless.
	time.Sleep(200 * time.Millisecond)
	return out
}

func (g *gangBench) waitSeen(b *testing.B, pods, pgs int64) {
	deadline := time.Now().Add(30 * time.Second)
	for g.seenPods.Load() < pods || g.seenPGs.Load() < pgs {
		if time.Now().After(deadline) {
			b.Fatalf("informers saw %d/%d member pods and %d/%d PodGroups after 30s", g.seenPods.Load(), pods, g.seenPGs.Load(), pgs)
		}
		time.Sleep(time.Millisecond)
	}
}

// complete runs the members of an admitted gang through the plugin's PreFilter, Reserve and
// Permit on their planned nodes, so that the gang completes and its reservation is released.
func (g *gangBench) complete(b *testing.B, members []*corev1.Pod) {
	ctx := context.Background()
	for i, m := range members {
		state := framework.NewCycleState()
		res, s := g.pl.PreFilter(ctx, state, m, g.nodes)
		if !s.IsSuccess() || res == nil || len(res.NodeNames) == 0 {
			b.Fatalf("member %s of an admitted gang was not steered to planned nodes: %v", m.Name, s)
		}
		node := sets.List(res.NodeNames)[0]
		if s := g.pl.Reserve(ctx, state, m, node); !s.IsSuccess() {
			b.Fatalf("Reserve %s: %v", m.Name, s)
		}
		s, _ = g.pl.Permit(ctx, state, m, node)
		switch {
		case i < len(members)-1 && s.Code() != fwk.Wait:
			b.Fatalf("Permit %s (member %d of %d): want Wait, got %v", m.Name, i+1, len(members), s)
		case i == len(members)-1 && !s.IsSuccess():
			b.Fatalf("Permit %s (last member): want Success, got %v", m.Name, s)
		}
	}
}

// withGPURequest copies the GPU limit into the requests, as the apiserver's defaulting does
// for extended resources; the snapshot and the fake clientsets do no defaulting.
func withGPURequest(p *corev1.Pod) *corev1.Pod {
	res := &p.Spec.Containers[0].Resources
	res.Requests[gpuResource] = res.Limits[gpuResource]
	return p
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkGang7500Nodes200kPods(b *testing.B) {
	g := newGangBench(b)
	// The setup's garbage is collected now, not during the first measured decisions.
	runtime.GC()
	kinds := []struct {
		name  string
		mixed bool
	}{{"mixed-1notebook-7workers", true}, {"identical-8workers", false}}
	for _, kind := range kinds {
		var wallMs, cpuMs float64
		var planned int
		b.Run(kind.name, func(b *testing.B) {
			gangs := g.createGangs(b, b.N, kind.mixed)
			runtime.GC()
			b.ReportAllocs()
			ctx := context.Background()
			var cpu time.Duration
			b.ResetTimer()
			for i := range b.N {
				first := gangs[i][0]
				state := framework.NewCycleState()
				before := cpuTime()
				res, s := g.pl.PreFilter(ctx, state, first, g.nodes)
				cpu += cpuTime() - before
				b.StopTimer()
				if !s.IsSuccess() || res == nil || len(res.NodeNames) == 0 {
					b.Fatalf("gang of %s was not admitted: %v", first.Name, s)
				}
				planned = res.NodeNames.Len()
				g.complete(b, gangs[i])
				b.StartTimer()
			}
			b.StopTimer()
			wallMs = float64(b.Elapsed().Nanoseconds()) / float64(b.N) / 1e6
			cpuMs = float64(cpu.Nanoseconds()) / float64(b.N) / 1e6
			b.ReportMetric(cpuMs, "cpu-ms/op")
		})
		if wallMs > 0 {
			met := "met"
			if cpuMs > 50 {
				met = "NOT met"
			}
			fmt.Printf("Gang admission, %s, %d nodes / %d running pods: %.2f ms wall, %.2f ms CPU per decision on %d cores (target 50 ms CPU: %s); first member steered to %d planned node(s)\n",
				kind.name, gangNodes, gangRunning, wallMs, cpuMs, runtime.NumCPU(), met, planned)
		}
	}
}
