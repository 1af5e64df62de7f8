package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"
	"sigs.k8s.io/yaml"

	"github.com/workbench-scheduler/workbench-scheduler/cmd/workbench-scheduler/app"
	"github.com/workbench-scheduler/workbench-scheduler/manifests"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/controlplane"
)

const gpuResource = corev1.ResourceName("nvidia.com/gpu")

// profile is one side of a comparison: a name and the KubeSchedulerConfiguration it runs.
type profile struct {
	name   string
	config []byte
}

// comparedProfiles returns upstream's default profile and ours. Both come from the shipped file;
// upstream's has our plugins and their config removed, so that only they differ.
func comparedProfiles(t testing.TB) []profile {
	var cfg map[string]any
	must(t, yaml.Unmarshal(manifests.SchedulerConfig, &cfg))
	profiles := cfg["profiles"].([]any)
	p0 := profiles[0].(map[string]any)
	delete(p0, "plugins")
	delete(p0, "pluginConfig")
	upstream, err := yaml.Marshal(cfg)
	must(t, err)
	return []profile{{"upstream-default", upstream}, {"workbench", manifests.SchedulerConfig}}
}

// startScheduler runs a profile until the returned stop is called.
func startScheduler(t testing.TB, cp *controlplane.ControlPlane, config []byte) func() {
	t.Helper()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	must(t, cp.WriteKubeconfig(kubeconfig))
	sched, err := app.StartFromConfig(context.Background(), cp.Client, config, kubeconfig, dir, "--secure-port=0")
	must(t, err)
	return sched.Stop
}

func ensureNamespace(t testing.TB, c kubernetes.Interface, name string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// createAll creates objects with a few workers; the test apiserver client allows 1000 QPS.
func createAll[T any](t testing.TB, items []T, create func(T) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	work := make(chan T)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := create(it); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	must(t, firstErr)
}

func benchNode(name, product string, cpu string, gpus int64) *corev1.Node {
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	labels := map[string]string{corev1.LabelHostname: name}
	if gpus > 0 {
		alloc[gpuResource] = *resource.NewQuantity(gpus, resource.DecimalSI)
		labels["nvidia.com/gpu.product"] = product
		labels["nvidia.com/gpu.memory"] = "81920"
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

func benchPod(ns, name string, gpus int64) *corev1.Pod {
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(max(gpus, 1)*4, resource.DecimalSI),
		corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dGi", max(gpus, 1)*16)),
	}}
	if gpus > 0 {
		res.Limits = corev1.ResourceList{gpuResource: *resource.NewQuantity(gpus, resource.DecimalSI)}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			SchedulerName: app.SchedulerName,
			Containers:    []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10", Resources: res}},
		},
	}
}

// cleanup deletes the run's pods and nodes at once (no kubelet: grace period 0 removes them).
func cleanup(t testing.TB, c kubernetes.Interface, ns string, nodes []*corev1.Node) {
	ctx := context.Background()
	zero := int64(0)
	must(t, c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}))
	createAll(t, nodes, func(n *corev1.Node) error {
		return c.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
	})
}

// histogram is a snapshot of a Prometheus histogram in the process's legacy registry.
type histogram struct {
	count   uint64
	sum     float64
	buckets []*dto.Bucket
}

// family returns the series of one metric in the process's legacy registry.
func family(t testing.TB, name string) []*dto.Metric {
	families, err := legacyregistry.DefaultGatherer.Gather()
	must(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func readHistogram(t testing.TB, name string) histogram {
	var h histogram
	for _, m := range family(t, name) {
		hist := m.GetHistogram()
		h.count += hist.GetSampleCount()
		h.sum += hist.GetSampleSum()
		if h.buckets == nil {
			for _, b := range hist.GetBucket() {
				h.buckets = append(h.buckets, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: new(uint64)})
			}
		}
		for i, b := range hist.GetBucket() {
			*h.buckets[i].CumulativeCount += b.GetCumulativeCount()
		}
	}
	return h
}

// since returns mean and quantile estimates (histogram_quantile's interpolation) of the
// observations made between before and h.
func (h histogram) since(before histogram, q float64) (count uint64, mean, quantile float64) {
	count = h.count - before.count
	if count == 0 {
		return 0, 0, 0
	}
	mean = (h.sum - before.sum) / float64(count)
	rank := q * float64(count)
	prevBound, prevCount := 0.0, 0.0
	for i, b := range h.buckets {
		c := float64(b.GetCumulativeCount())
		if before.buckets != nil {
			c -= float64(before.buckets[i].GetCumulativeCount())
		}
		if c >= rank {
			return count, mean, prevBound + (b.GetUpperBound()-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b.GetUpperBound(), c
	}
	return count, mean, prevBound
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func resourceMilli(m int64) *resource.Quantity {
	return resource.NewMilliQuantity(m, resource.DecimalSI)
}

// readCounters sums a counter family by the value of one label.
func readCounters(t testing.TB, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range family(t, name) {
		out[labelValue(m, label)] += m.GetCounter().GetValue()
	}
	return out
}

func counterDelta(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// readHistogramSums sums a histogram family's observed seconds by the values of two labels.
func readHistogramSums(t testing.TB, name, label1, label2 string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range family(t, name) {
		out[labelValue(m, label1)+"/"+labelValue(m, label2)] += m.GetHistogram().GetSampleSum()
	}
	return out
}
