package sandbox

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/orgtree"
)

// Labels the demo (and the report) use.
const (
	NodeGroupLabel  = "workbench.dev/node-group"
	ZoneLabel       = corev1.LabelTopologyZone
	GPUProductLabel = "nvidia.com/gpu.product"
	GPUMemoryLabel  = "nvidia.com/gpu.memory"
	GPUResource     = corev1.ResourceName("nvidia.com/gpu")
	schedulerName   = "workbench-scheduler"
	// PodGroupLabel puts a pod in a scheduler-plugins PodGroup (a gang).
	PodGroupLabel = schedv1alpha1.PodGroupLabel
	// SessionLabel "true" on a PodGroup makes its gang an interactive session (plugins/gang
	// reads the same label; a package in pkg/ does not import a plugin).
	SessionLabel = "workbench.dev/session"
	// GangMessageAnnotation is where plugins/gang writes a PodGroup's latest admission outcome.
	GangMessageAnnotation = "workbench.dev/gang-message"
)

type demoPool struct {
	group     string
	zones     []string
	perZone   int
	cpu, mem  string
	gpus      int
	product   string
	gpuMemMiB string
}

var demoPools = []demoPool{
	{group: "cpu", zones: []string{"zone-a", "zone-b", "zone-c"}, perZone: 4, cpu: "16", mem: "64Gi"},
	{group: "gpu-t4", zones: []string{"zone-a", "zone-b"}, perZone: 2, cpu: "16", mem: "64Gi", gpus: 4, product: "Tesla-T4", gpuMemMiB: "15360"},
	{group: "gpu-a100", zones: []string{"zone-a", "zone-b"}, perZone: 2, cpu: "64", mem: "512Gi", gpus: 8, product: "NVIDIA-A100-SXM4-80GB", gpuMemMiB: "81920"},
	{group: "gpu-h100", zones: []string{"zone-c"}, perZone: 2, cpu: "96", mem: "1Ti", gpus: 8, product: "NVIDIA-H100-80GB-HBM3", gpuMemMiB: "81920"},
}

// DemoObjects is the demo scenario: 22 nodes in three zones (12 CPU, 10 with GPUs of three
// models, H100 being special), an org of teams owning ResourcePools (see demoResourcePools),
// sessions of several pods placed as gangs (see demoGangs), and a data-science workload of
// notebook sessions, a hub Deployment, a batch Job, GPU sessions (generic, naming a model,
// asking for memory, naming a model that does not exist), one session too large for any node,
// and one pod left to the default scheduler.
func DemoObjects() []runtime.Object {
	var objs []runtime.Object
	for ns, team := range map[string]string{"data-science": "ai.data-science", "ml-training": "ai.ml-training", "analytics": "finance.analytics"} {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{orgtree.TeamLabel: team}}})
	}
	objs = append(objs, demoResourcePools()...)
	for _, p := range demoPools {
		for _, zone := range p.zones {
			for i := range p.perZone {
				objs = append(objs, demoNode(p, zone, i))
			}
		}
	}
	objs = append(objs, demoGangs()...)
	for _, user := range []string{"ana", "ben", "chen", "dara", "eli", "fay", "gus", "hana", "ivo", "jo"} {
		objs = append(objs, session("data-science", "jupyter-"+user, "jupyter", "2", "8Gi", 0))
	}
	for _, user := range []string{"kai", "lea", "mo", "nia"} {
		objs = append(objs, session("analytics", "rstudio-"+user, "rstudio", "1", "4Gi", 0))
	}
	for _, user := range []string{"oto", "pia", "quin"} {
		objs = append(objs, session("ml-training", "gpu-session-"+user, "jupyter", "4", "32Gi", 1))
	}
	objs = append(objs,
		session("ml-training", "finetune-rui", "jupyter", "16", "128Gi", 4),
		// GPUAffinity: the special SKU only by name, a model by SKU name, a memory floor, a typo.
		withAnnotation(session("ml-training", "llm-train-uma", "batch", "64", "512Gi", 8), "workbench.dev/gpu-model", "h100"),
		withAnnotation(session("ml-training", "gpu-session-vic", "jupyter", "4", "32Gi", 1), "workbench.dev/gpu-model", "a100"),
		withAnnotation(session("ml-training", "gpu-session-wes", "jupyter", "4", "32Gi", 1), "workbench.dev/gpu-min-memory", "40Gi"),
		withAnnotation(session("ml-training", "gpu-session-xia", "jupyter", "4", "32Gi", 1), "workbench.dev/gpu-model", "h200"),
		// Asks for more CPU than any node has, so the report shows the scheduler's reason.
		session("data-science", "oversized-sam", "jupyter", "200", "64Gi", 0),
		hubDeployment(),
		etlJob(),
		interactiveJob(),
	)
	plain := session("analytics", "left-to-default-scheduler", "batch", "500m", "1Gi", 0)
	plain.Spec.SchedulerName = corev1.DefaultSchedulerName
	objs = append(objs, plain)
	return objs
}

// demoResourcePools is the demo's org: the ai org owns zone a's CPU nodes, its data-science
// team one node of zone b (its sessions spill to ai's pool), ml-training the A100s (lendable;
// its H100 request falls through to the unpooled H100s), finance one node of zone c, which the
// shared pool's selector also matches (a tie on specificity: the first name wins, and the
// shared pool reports the overlap). T4, H100 and the rest of zone b are in no pool.
func demoResourcePools() []runtime.Object {
	pool := func(name, owner string, lendable bool, selector map[string]string) *workbenchv1alpha1.ResourcePool {
		return &workbenchv1alpha1.ResourcePool{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       workbenchv1alpha1.ResourcePoolSpec{Owner: owner, Lendable: lendable, NodeSelector: metav1.LabelSelector{MatchLabels: selector}},
		}
	}
	return []runtime.Object{
		pool("ai-cpu", "ai", false, map[string]string{NodeGroupLabel: "cpu", ZoneLabel: "zone-a"}),
		pool("data-science-cpu", "ai/data-science", false, map[string]string{NodeGroupLabel: "cpu", corev1.LabelHostname: "cpu-zone-b-0"}),
		pool("ml-training-a100", "ai/ml-training", true, map[string]string{NodeGroupLabel: "gpu-a100"}),
		pool("finance-cpu", "finance", false, map[string]string{NodeGroupLabel: "cpu", corev1.LabelHostname: "cpu-zone-c-0"}),
		pool("shared-cpu", "", false, map[string]string{NodeGroupLabel: "cpu", ZoneLabel: "zone-c"}),
	}
}

// demoGangs are interactive sessions of several pods, each a PodGroup that Gang places whole
// or not at all: a notebook with two Dask workers, one of them on a GPU (a T4: the team owns
// no GPU pool, and generic requests stay off the special H100s); a two-worker training session
// on ml-training's own A100s; and a pretraining session whose three 8-GPU H100 workers need
// 24 H100s where the cluster has 16, so none of its pods is placed and the PodGroup says why.
// They come before the other pods, so each gang is decided while the rest is still arriving.
func demoGangs() []runtime.Object {
	group := func(ns, name string, minMember int32) *schedv1alpha1.PodGroup {
		return &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{SessionLabel: "true"}},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
		}
	}
	member := func(pod *corev1.Pod, group string) *corev1.Pod {
		pod.Labels[PodGroupLabel] = group
		return pod
	}
	objs := []runtime.Object{
		group("data-science", "dask-ana", 3),
		member(session("data-science", "dask-ana-notebook", "jupyter", "2", "8Gi", 0), "dask-ana"),
		member(session("data-science", "dask-ana-worker-0", "dask-worker", "4", "16Gi", 0), "dask-ana"),
		member(session("data-science", "dask-ana-worker-1", "dask-worker", "4", "16Gi", 1), "dask-ana"),

		group("ml-training", "ddp-pia", 2),
		member(withAnnotation(session("ml-training", "ddp-pia-0", "pytorch-worker", "8", "64Gi", 4), "workbench.dev/gpu-model", "a100"), "ddp-pia"),
		member(withAnnotation(session("ml-training", "ddp-pia-1", "pytorch-worker", "8", "64Gi", 4), "workbench.dev/gpu-model", "a100"), "ddp-pia"),

		group("data-science", "pretrain-ivo", 4),
		member(session("data-science", "pretrain-ivo-notebook", "jupyter", "2", "8Gi", 0), "pretrain-ivo"),
	}
	for i := range 3 {
		worker := session("data-science", fmt.Sprintf("pretrain-ivo-worker-%d", i), "pytorch-worker", "32", "256Gi", 8)
		objs = append(objs, member(withAnnotation(worker, "workbench.dev/gpu-model", "h100"), "pretrain-ivo"))
	}
	return objs
}

func demoNode(p demoPool, zone string, i int) *corev1.Node {
	name := fmt.Sprintf("%s-%s-%d", p.group, zone, i)
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(p.cpu),
		corev1.ResourceMemory: resource.MustParse(p.mem),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	labels := map[string]string{
		corev1.LabelHostname: name,
		ZoneLabel:            zone,
		NodeGroupLabel:       p.group,
	}
	if p.gpus > 0 {
		alloc[GPUResource] = *resource.NewQuantity(int64(p.gpus), resource.DecimalSI)
		labels[GPUProductLabel] = p.product
		labels[GPUMemoryLabel] = p.gpuMemMiB
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity:    alloc,
			Allocatable: alloc,
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func podSpec(image, cpu, mem string, gpus int) corev1.PodSpec {
	req := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
	}
	limits := corev1.ResourceList{}
	if gpus > 0 {
		limits[GPUResource] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
		req[GPUResource] = limits[GPUResource]
	}
	return corev1.PodSpec{
		SchedulerName: schedulerName,
		Containers: []corev1.Container{{
			Name:      "main",
			Image:     image,
			Resources: corev1.ResourceRequirements{Requests: req, Limits: limits},
		}},
	}
}

func session(ns, name, kind, cpu, mem string, gpus int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels:    map[string]string{"app.kubernetes.io/component": "session", "workbench.dev/session-kind": kind},
		},
		Spec: podSpec("quay.io/jupyter/scipy-notebook:2025-01-06", cpu, mem, gpus),
	}
}

func withAnnotation(pod *corev1.Pod, key, value string) *corev1.Pod {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[key] = value
	return pod
}

func hubDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "notebook-hub"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data-science", Name: "notebook-hub"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec("quay.io/jupyterhub/k8s-hub:4.0.0", "500m", "1Gi", 0),
			},
		},
	}
}

func etlJob() *batchv1.Job {
	spec := podSpec("python:3.12-slim", "2", "4Gi", 0)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "analytics", Name: "feature-etl"},
		Spec: batchv1.JobSpec{
			Parallelism: ptr.To[int32](6),
			Completions: ptr.To[int32](6),
			Template:    corev1.PodTemplateSpec{Spec: spec},
		},
	}
}

// interactiveJob is how platforms run a long-lived session as a Job: one pod at a time, many
// completions so that a finished session can be restarted by the controller.
func interactiveJob() *batchv1.Job {
	spec := podSpec("quay.io/jupyter/scipy-notebook:2025-01-06", "2", "8Gi", 0)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data-science", Name: "session-tara"},
		Spec: batchv1.JobSpec{
			Parallelism: ptr.To[int32](1),
			Completions: ptr.To[int32](1000),
			Template:    corev1.PodTemplateSpec{Spec: spec},
		},
	}
}
