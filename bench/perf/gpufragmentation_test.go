package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/test/utils/client-go/ktesting"
	"sigs.k8s.io/yaml"

	"github.com/workbench-scheduler/workbench-scheduler/bench/perfrun"
)

// The GPUFragmentation workload's check. The workload fills GPU nodes with 1-, 2- and 4-GPU pods
// (namespace gpu-fill), waits until each was tried, then offers one whole-node request per GPU
// node (gpu-whole) and waits until each was tried. Whole-node requests that find no empty node
// stay pending, so the workload cannot wait for them to be bound: the check, registered by the
// prepare hook, runs after the workload's last op while the scheduler still runs, waits until
// the scheduler has placed what it can (no pending pod fits a node of its class), and counts.

const (
	gpuResource         v1.ResourceName = "nvidia.com/gpu"
	gpuProductLabel                     = "nvidia.com/gpu.product"
	gpuFillNamespace                    = "gpu-fill"
	gpuWholeNamespace                   = "gpu-whole"
	genericGPUClass                     = "generic"
	gpuSettleTimeout                    = 5 * time.Minute
	gpuFragmentationTag                 = "GPUFragmentation placement"
)

// gpuFragmentation is the GPUFragmentation workload's check, recorded in the run record.
var gpuFragmentation *perfrun.GPUFragmentation

// checkGPUFragmentationAfterRun registers the check. Cleanups run last registered first: this
// one after the workload's own (its last barrier has passed) and before scheduler_perf stops the
// scheduler and the apiserver.
func checkGPUFragmentationAfterRun(tCtx ktesting.TContext) {
	tCtx.CleanupCtx(func(tCtx ktesting.TContext) {
		if tCtx.Failed() {
			return
		}
		f, err := settleGPUFragmentation(tCtx, tCtx.Client(), gpuSettleTimeout)
		if err != nil {
			tCtx.Errorf("checking GPU fragmentation: %v", err)
			return
		}
		gpuFragmentation = f
		fmt.Println(gpuFragmentationSummary(tCtx.Name(), f))
	})
}

// gpuFragmentationSummary is the line make perf prints per case.
func gpuFragmentationSummary(name string, f *perfrun.GPUFragmentation) string {
	var classes []string
	for _, c := range f.Classes {
		classes = append(classes, fmt.Sprintf("%s %d/%d", c.Name, c.Placed, c.Optimum))
	}
	return fmt.Sprintf("%s %s: whole-node requests placed %d of optimum %d (%.1f %% of optimum; %s); empty GPU nodes after the fill %d of %d; fill %d of %d pods bound, %d GPUs requested (%.1f %% of %d)",
		gpuFragmentationTag, name, f.Placed, f.Optimum, 100*f.Share(), strings.Join(classes, ", "), f.EmptyAfterFill, f.Nodes,
		f.FillBound, f.FillPods, f.FillGPUs, 100*float64(f.FillGPUs)/float64(max(totalGPUs(f), 1)), totalGPUs(f))
}

func totalGPUs(f *perfrun.GPUFragmentation) int64 {
	var n int64
	for _, c := range f.Classes {
		n += int64(c.Nodes) * c.GPUsPerNode
	}
	return n
}

// settleGPUFragmentation polls the apiserver until the scheduler has decided every pod of the
// workload, then returns the counts.
func settleGPUFragmentation(ctx context.Context, c kubernetes.Interface, timeout time.Duration) (*perfrun.GPUFragmentation, error) {
	var f *perfrun.GPUFragmentation
	var why string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		fill, err := c.CoreV1().Pods(gpuFillNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		whole, err := c.CoreV1().Pods(gpuWholeNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		f, why, err = countGPUFragmentation(nodes.Items, fill.Items, whole.Items)
		return err == nil && why == "", err
	})
	if err != nil && why != "" {
		err = fmt.Errorf("%w (after %s: %s)", err, timeout, why)
	}
	return f, err
}

type gpuNode struct {
	node     *v1.Node
	class    string
	free     int64
	fillGPUs int64
}

// countGPUFragmentation counts placements from the cluster's nodes and the workload's fill and
// whole-node pods. unsettled says why the scheduler may still bind some pod ("" when it cannot):
// a pod not yet tried, or a pending pod that fits a node of its class.
//
// A class is the GPU nodes that a kind of pod may use, read from the pods' nodeSelector and
// required node affinity: named after the products it selects when the pod selects some, else
// "generic". Kinds of pods must use disjoint sets of nodes, or the per-class optimum would not
// be the optimum; that is an error.
func countGPUFragmentation(nodeList []v1.Node, fill, whole []v1.Pod) (f *perfrun.GPUFragmentation, unsettled string, err error) {
	nodes := map[string]*gpuNode{}
	var names []string
	for i := range nodeList {
		n := &nodeList[i]
		if q, ok := n.Status.Allocatable[gpuResource]; ok && q.Value() > 0 {
			nodes[n.Name] = &gpuNode{node: n, free: q.Value()}
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)

	// Pods of a kind share their node constraints: each kind is matched against the nodes once.
	classOfKind := map[string]string{}
	classOf := func(pod *v1.Pod) (string, error) {
		kind, err := json.Marshal([]any{pod.Spec.NodeSelector, pod.Spec.Affinity})
		if err != nil {
			return "", err
		}
		if class, ok := classOfKind[string(kind)]; ok {
			return class, nil
		}
		required := nodeaffinity.GetRequiredNodeAffinity(pod)
		var eligible []*gpuNode
		products := sets.New[string]()
		for _, name := range names {
			n := nodes[name]
			if ok, err := required.Match(n.node); err != nil {
				return "", fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
			} else if ok {
				eligible = append(eligible, n)
				products.Insert(n.node.Labels[gpuProductLabel])
			}
		}
		if len(eligible) == 0 {
			return "", fmt.Errorf("pod %s/%s may use no GPU node", pod.Namespace, pod.Name)
		}
		class := genericGPUClass
		if selectsProduct(pod) {
			class = strings.Join(sets.List(products), "+")
		}
		for _, n := range eligible {
			if n.class != "" && n.class != class {
				return "", fmt.Errorf("pods of GPU classes %s and %s may both use node %s: the optimum assumes classes of disjoint nodes", n.class, class, n.node.Name)
			}
			n.class = class
		}
		classOfKind[string(kind)] = class
		return class, nil
	}

	type podGPUs struct {
		pod   *v1.Pod
		class string
		gpus  int64
		whole bool
	}
	var pods []podGPUs
	for _, set := range []struct {
		pods  []v1.Pod
		whole bool
	}{{fill, false}, {whole, true}} {
		for i := range set.pods {
			pod := &set.pods[i]
			class, err := classOf(pod)
			if err != nil {
				return nil, "", err
			}
			reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
			q := reqs[gpuResource]
			pods = append(pods, podGPUs{pod, class, q.Value(), set.whole})
		}
	}

	classes := map[string]*perfrun.GPUClass{}
	for _, name := range names {
		n := nodes[name]
		if n.class == "" {
			continue // no pod of the workload may use it
		}
		c := classes[n.class]
		if c == nil {
			c = &perfrun.GPUClass{Name: n.class, GPUsPerNode: n.free}
			classes[n.class] = c
		}
		if c.GPUsPerNode != n.free {
			return nil, "", fmt.Errorf("GPU nodes of class %s differ in GPUs (%d, and %d on node %s): the optimum assumes equal nodes", n.class, c.GPUsPerNode, n.free, name)
		}
		c.Nodes++
	}

	var pending []podGPUs
	for _, p := range pods {
		c := classes[p.class]
		if p.whole {
			if p.gpus != c.GPUsPerNode {
				return nil, "", fmt.Errorf("whole-node pod %s/%s asks for %d GPUs; nodes of class %s have %d", p.pod.Namespace, p.pod.Name, p.gpus, p.class, c.GPUsPerNode)
			}
			c.Offered++
		} else {
			c.FillPods++
			c.FillGPUs += p.gpus
		}
		if p.pod.Spec.NodeName == "" {
			pending = append(pending, p)
			continue
		}
		n := nodes[p.pod.Spec.NodeName]
		if n == nil || n.class != p.class {
			return nil, "", fmt.Errorf("pod %s/%s of GPU class %s is bound to node %s, not a node of its class", p.pod.Namespace, p.pod.Name, p.class, p.pod.Spec.NodeName)
		}
		n.free -= p.gpus
		if p.whole {
			c.Placed++
		} else {
			n.fillGPUs += p.gpus
			c.FillBound++
		}
	}
	for _, name := range names {
		n := nodes[name]
		if n.free < 0 {
			return nil, "", fmt.Errorf("pods bound to node %s ask for %d GPUs more than it has", name, -n.free)
		}
		if n.class != "" && n.fillGPUs == 0 {
			classes[n.class].EmptyAfterFill++
		}
	}
	for _, p := range pending {
		if !attempted(p.pod) {
			return nil, fmt.Sprintf("pod %s/%s not tried yet", p.pod.Namespace, p.pod.Name), nil
		}
	}
	for _, p := range pending {
		for _, name := range names {
			if n := nodes[name]; n.class == p.class && n.free >= p.gpus {
				return nil, fmt.Sprintf("pending pod %s/%s (%d GPUs) fits node %s (%d free)", p.pod.Namespace, p.pod.Name, p.gpus, name, n.free), nil
			}
		}
	}

	f = &perfrun.GPUFragmentation{GPUClass: perfrun.GPUClass{Name: "all"}}
	for _, c := range classes {
		c.Optimum = gpuOptimum(c.Nodes, c.GPUsPerNode, c.FillGPUs, c.Offered)
		f.Classes = append(f.Classes, *c)
		f.Nodes += c.Nodes
		f.FillPods += c.FillPods
		f.FillGPUs += c.FillGPUs
		f.FillBound += c.FillBound
		f.EmptyAfterFill += c.EmptyAfterFill
		f.Offered += c.Offered
		f.Placed += c.Placed
		f.Optimum += c.Optimum
	}
	slices.SortFunc(f.Classes, func(a, b perfrun.GPUClass) int { return strings.Compare(a.Name, b.Name) })
	return f, "", nil
}

// selectsProduct reports whether the pod's nodeSelector or a required node affinity term
// selects GPU products by name (In): a pod that only excludes some is generic.
func selectsProduct(pod *v1.Pod) bool {
	if _, ok := pod.Spec.NodeSelector[gpuProductLabel]; ok {
		return true
	}
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchExpressions {
			if r.Key == gpuProductLabel && r.Operator == v1.NodeSelectorOpIn {
				return true
			}
		}
	}
	return false
}

// gpuOptimum is the most whole-node requests a perfect packing of the fill leaves room for (see
// perfrun.GPUFragmentation).
func gpuOptimum(nodes int, gpusPerNode, fillGPUs int64, offered int) int {
	if gpusPerNode <= 0 {
		return 0
	}
	used := int((fillGPUs + gpusPerNode - 1) / gpusPerNode)
	return max(min(offered, nodes-used), 0)
}

// attempted reports whether the scheduler has tried the pod: it sets PodScheduled when a pod
// does not fit (scheduler_perf's barrier with stageRequirement Attempted reads it the same way).
func attempted(pod *v1.Pod) bool {
	return slices.ContainsFunc(pod.Status.Conditions, func(c v1.PodCondition) bool { return c.Type == v1.PodScheduled })
}

// gpuFillSeed is bench/gpu_test.go's fragmentation seed.
const gpuFillSeed = 20261123

// gpuFillSizes draws n pod sizes as bench/gpu_test.go's fragmentationSessions does: 1 GPU with
// probability 1/2, 2 with 3/10, 4 with 1/5.
func gpuFillSizes(n int) string {
	rng := rand.New(rand.NewPCG(gpuFillSeed, 0))
	var b strings.Builder
	for range n {
		switch r := rng.IntN(10); {
		case r < 5:
			b.WriteByte('1')
		case r < 8:
			b.WriteByte('2')
		default:
			b.WriteByte('4')
		}
	}
	return b.String()
}

// configTestCase is a test case of config.yaml as the GPUFragmentation checks read it.
type configTestCase struct {
	Name             string           `json:"name"`
	WorkloadTemplate []map[string]any `json:"workloadTemplate"`
	Workloads        []struct {
		Name   string         `json:"name"`
		Labels []string       `json:"labels"`
		Params map[string]any `json:"params"`
	} `json:"workloads"`
}

func gpuFragmentationCases(t *testing.T) []configTestCase {
	t.Helper()
	data, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var all []configTestCase
	if err := yaml.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	var cases []configTestCase
	for _, tc := range all {
		if strings.HasPrefix(tc.Name, "GPUFragmentation_") {
			cases = append(cases, tc)
		}
	}
	if len(cases) != 3 {
		t.Fatalf("config.yaml has %d GPUFragmentation test cases, want 3 (upstream, mostallocated, workbench)", len(cases))
	}
	return cases
}

// TestGPUFragmentationFill checks config.yaml against what its comments and the optimum rely
// on: the fill's sizes are the seeded draws, each fill asks for 60-70 % of its class's GPUs,
// and the whole-node requests are one per GPU node of each class (node-gpu-mixed.yaml makes one
// GPU node in five an H100).
func TestGPUFragmentationFill(t *testing.T) {
	for _, tc := range gpuFragmentationCases(t) {
		fills := map[string]string{} // count param -> sizes
		for _, op := range tc.WorkloadTemplate {
			params, _ := op["templateParams"].(map[string]any)
			sizes, _ := params["sizes"].(string)
			if op["namespace"] != gpuFillNamespace || sizes == "" {
				continue
			}
			if want := gpuFillSizes(len(sizes)); sizes != want {
				t.Errorf("%s: fill sizes are\n%s\nwant the first %d seeded draws\n%s", tc.Name, sizes, len(sizes), want)
			}
			fills[strings.TrimPrefix(op["countParam"].(string), "$")] = sizes
		}
		for _, w := range tc.Workloads {
			p := func(name string) int {
				v, ok := w.Params[name].(float64)
				if !ok {
					t.Fatalf("%s/%s: param %s is %v, want a number", tc.Name, w.Name, name, w.Params[name])
				}
				return int(v)
			}
			gpuNodes, generic, h100 := p("gpuNodes"), p("genericNodes"), p("h100Nodes")
			if h100 != (gpuNodes+4)/5 || generic != gpuNodes-h100 {
				t.Errorf("%s/%s: %d GPU nodes are %d H100 and %d others; the params say %d and %d", tc.Name, w.Name, gpuNodes, (gpuNodes+4)/5, gpuNodes-(gpuNodes+4)/5, h100, generic)
			}
			for param, nodes := range map[string]int{"genericFill": generic, "h100Fill": h100} {
				sizes, ok := fills[param]
				if !ok {
					t.Fatalf("%s: no fill op counts $%s", tc.Name, param)
				}
				var gpus int
				for i := range p(param) {
					gpus += int(sizes[i%len(sizes)] - '0')
				}
				if share := float64(gpus) / float64(8*nodes); share < 0.6 || share > 0.7 {
					t.Errorf("%s/%s: %d pods of $%s ask for %d GPUs, %.1f %% of the class's %d; want 60-70 %%", tc.Name, w.Name, p(param), param, gpus, 100*share, 8*nodes)
				}
			}
		}
	}
}

// TestMostAllocatedProfile checks the generated mostallocated profile: upstream's with
// NodeResourcesFit's MostAllocated strategy on nvidia.com/gpu, and nothing else.
func TestMostAllocatedProfile(t *testing.T) {
	dir := t.TempDir()
	if err := writeProfiles(dir); err != nil {
		t.Fatal(err)
	}
	read := func(name string) map[string]any {
		data, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	up, ma := read("upstream"), read("mostallocated")
	delete(ma["profiles"].([]any)[0].(map[string]any), "pluginConfig")
	if diff := cmp.Diff(up, ma); diff != "" {
		t.Errorf("mostallocated differs from upstream in more than its pluginConfig (-upstream +mostallocated):\n%s", diff)
	}

	cfg, err := loadSchedulerConfig(filepath.Join(dir, "mostallocated.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Profiles) != 1 {
		t.Fatalf("mostallocated has %d profiles, want 1", len(cfg.Profiles))
	}
	for _, pc := range cfg.Profiles[0].PluginConfig {
		args, ok := pc.Args.(*schedconfig.NodeResourcesFitArgs)
		if !ok {
			continue
		}
		want := &schedconfig.ScoringStrategy{Type: schedconfig.MostAllocated, Resources: []schedconfig.ResourceSpec{{Name: string(gpuResource), Weight: 1}}}
		if diff := cmp.Diff(want, args.ScoringStrategy); diff != "" {
			t.Errorf("NodeResourcesFit's scoring strategy (-want +got):\n%s", diff)
		}
		return
	}
	t.Errorf("mostallocated has no NodeResourcesFit args")
}

// loadSchedulerConfig decodes and defaults a configuration as scheduler_perf does.
func loadSchedulerConfig(file string) (*schedconfig.KubeSchedulerConfiguration, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	obj, gvk, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("%s decodes as %s, not a KubeSchedulerConfiguration", file, gvk)
	}
	return cfg, nil
}

func gpuTestNode(name, product string, gpus int64) v1.Node {
	return v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{gpuProductLabel: product}},
		Status:     v1.NodeStatus{Allocatable: v1.ResourceList{gpuResource: *resource.NewQuantity(gpus, resource.DecimalSI)}},
	}
}

// gpuTestPod is a pod of gpus GPUs, naming product if set (else a generic pod, kept off H100
// nodes), bound to node if set, tried if tried (a PodScheduled condition).
func gpuTestPod(ns, name string, gpus int64, product, node string, tried bool) v1.Pod {
	p := v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{gpuResource: *resource.NewQuantity(gpus, resource.DecimalSI)},
		}}}},
	}
	if product != "" {
		p.Spec.NodeSelector = map[string]string{gpuProductLabel: product}
	} else {
		// pod-gpu-frag.yaml's generic pods: off the H100 nodes.
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
				{Key: gpuProductLabel, Operator: v1.NodeSelectorOpNotIn, Values: []string{"NVIDIA-H100-80GB-HBM3"}},
			}}},
		}}}
	}
	if tried || node != "" {
		status := v1.ConditionTrue
		if node == "" {
			status = v1.ConditionFalse
		}
		p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: status}}
	}
	return p
}

func TestCountGPUFragmentation(t *testing.T) {
	const h100 = "NVIDIA-H100-80GB-HBM3"
	nodes := []v1.Node{
		gpuTestNode("a1", "NVIDIA-A100-SXM4-80GB", 8),
		gpuTestNode("a2", "NVIDIA-A100-SXM4-80GB", 8),
		gpuTestNode("l1", "NVIDIA-L4", 8),
		gpuTestNode("h1", h100, 8),
		gpuTestNode("h2", h100, 8),
		{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}},
	}
	fill := func(node1, node2 string) []v1.Pod {
		return []v1.Pod{
			gpuTestPod(gpuFillNamespace, "g4", 4, "", "a1", true),
			gpuTestPod(gpuFillNamespace, "g2", 2, "", node1, true),
			gpuTestPod(gpuFillNamespace, "g1", 1, "", node2, true),
			gpuTestPod(gpuFillNamespace, "h4", 4, h100, "h1", true),
		}
	}
	for _, tc := range []struct {
		name      string
		fill      []v1.Pod
		whole     []v1.Pod
		want      *perfrun.GPUFragmentation
		unsettled string
		err       string
	}{{
		// 7 generic GPUs fit one node: 2 of 3 generic nodes can stay empty; 4 H100 GPUs
		// leave 1 of 2. Packed as well as possible, every whole-node request found a node.
		name: "packed fill, every empty node taken",
		fill: fill("a1", "a1"),
		whole: []v1.Pod{
			gpuTestPod(gpuWholeNamespace, "w1", 8, "", "a2", true),
			gpuTestPod(gpuWholeNamespace, "w2", 8, "", "l1", true),
			gpuTestPod(gpuWholeNamespace, "w3", 8, "", "", true),
			gpuTestPod(gpuWholeNamespace, "w4", 8, h100, "h2", true),
			gpuTestPod(gpuWholeNamespace, "w5", 8, h100, "", true),
		},
		want: &perfrun.GPUFragmentation{
			GPUClass: perfrun.GPUClass{Name: "all", Nodes: 5, FillPods: 4, FillGPUs: 11, FillBound: 4, EmptyAfterFill: 3, Offered: 5, Placed: 3, Optimum: 3},
			Classes: []perfrun.GPUClass{
				{Name: h100, Nodes: 2, GPUsPerNode: 8, FillPods: 1, FillGPUs: 4, FillBound: 1, EmptyAfterFill: 1, Offered: 2, Placed: 1, Optimum: 1},
				{Name: genericGPUClass, Nodes: 3, GPUsPerNode: 8, FillPods: 3, FillGPUs: 7, FillBound: 3, EmptyAfterFill: 2, Offered: 3, Placed: 2, Optimum: 2},
			},
		},
	}, {
		name: "spread fill leaves one generic node empty",
		fill: fill("a2", "l1"),
		whole: []v1.Pod{
			gpuTestPod(gpuWholeNamespace, "w1", 8, "", "", true),
			gpuTestPod(gpuWholeNamespace, "w2", 8, "", "", true),
			gpuTestPod(gpuWholeNamespace, "w3", 8, "", "", true),
			gpuTestPod(gpuWholeNamespace, "w4", 8, h100, "h2", true),
			gpuTestPod(gpuWholeNamespace, "w5", 8, h100, "", true),
		},
		want: &perfrun.GPUFragmentation{
			GPUClass: perfrun.GPUClass{Name: "all", Nodes: 5, FillPods: 4, FillGPUs: 11, FillBound: 4, EmptyAfterFill: 1, Offered: 5, Placed: 1, Optimum: 3},
			Classes: []perfrun.GPUClass{
				{Name: h100, Nodes: 2, GPUsPerNode: 8, FillPods: 1, FillGPUs: 4, FillBound: 1, EmptyAfterFill: 1, Offered: 2, Placed: 1, Optimum: 1},
				{Name: genericGPUClass, Nodes: 3, GPUsPerNode: 8, FillPods: 3, FillGPUs: 7, FillBound: 3, EmptyAfterFill: 0, Offered: 3, Placed: 0, Optimum: 2},
			},
		},
	}, {
		name:      "a pending request that fits a node is not settled",
		fill:      fill("a1", "a1"),
		whole:     []v1.Pod{gpuTestPod(gpuWholeNamespace, "w1", 8, "", "", true)},
		unsettled: "pending pod gpu-whole/w1 (8 GPUs) fits node",
	}, {
		name:      "an untried pod is not settled",
		fill:      fill("a1", "a1"),
		whole:     []v1.Pod{gpuTestPod(gpuWholeNamespace, "w1", 8, h100, "", false)},
		unsettled: "pod gpu-whole/w1 not tried yet",
	}, {
		// The H100 nodes are nobody's: no pod of the workload names the H100.
		name: "an unbound fill pod counts in the optimum",
		fill: []v1.Pod{
			gpuTestPod(gpuFillNamespace, "g4", 4, "", "a1", true),
			gpuTestPod(gpuFillNamespace, "g8", 8, "", "", true),
			gpuTestPod(gpuFillNamespace, "g4b", 4, "", "a2", true),
			gpuTestPod(gpuFillNamespace, "g4c", 4, "", "l1", true),
		},
		whole: []v1.Pod{gpuTestPod(gpuWholeNamespace, "w1", 8, "", "", true)},
		want: &perfrun.GPUFragmentation{
			GPUClass: perfrun.GPUClass{Name: "all", Nodes: 3, FillPods: 4, FillGPUs: 20, FillBound: 3, Offered: 1},
			Classes: []perfrun.GPUClass{
				{Name: genericGPUClass, Nodes: 3, GPUsPerNode: 8, FillPods: 4, FillGPUs: 20, FillBound: 3, Offered: 1},
			},
		},
	}, {
		name: "pods of two classes that may share a node are an error",
		fill: []v1.Pod{gpuTestPod(gpuFillNamespace, "g1", 1, "", "a1", true), gpuTestPod(gpuFillNamespace, "a1", 1, "NVIDIA-A100-SXM4-80GB", "a2", true)},
		err:  "pods of GPU classes generic and NVIDIA-A100-SXM4-80GB may both use node a1",
	}, {
		name:  "a whole-node request of another size is an error",
		fill:  fill("a1", "a1"),
		whole: []v1.Pod{gpuTestPod(gpuWholeNamespace, "w1", 4, h100, "", true)},
		err:   "whole-node pod gpu-whole/w1 asks for 4 GPUs; nodes of class " + h100 + " have 8",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, unsettled, err := countGPUFragmentation(nodes, tc.fill, tc.whole)
			if tc.err != "" || err != nil {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if tc.unsettled != "" || unsettled != "" {
				if !strings.HasPrefix(unsettled, tc.unsettled) || tc.unsettled == "" {
					t.Fatalf("unsettled %q, want %q", unsettled, tc.unsettled)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}
