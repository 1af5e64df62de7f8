package gpuaffinity

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Annotations a pod uses to state its GPU needs.
const (
	// ModelAnnotation is a comma-separated any-of list of SKU names or product label values.
	ModelAnnotation = "workbench.dev/gpu-model"
	// MinMemoryAnnotation is the minimum memory per GPU, as a quantity such as 40Gi.
	MinMemoryAnnotation = "workbench.dev/gpu-min-memory"
)

// gpuRequest is what one pod asks of GPU nodes, parsed once per scheduling cycle.
type gpuRequest struct {
	// units are the pod's GPU requests, one per resource name, sorted by name; none for a pod
	// without GPUs.
	units []unitRequest
	// products are the acceptable product label values, lower-cased; nil accepts any.
	products sets.Set[string]
	// modelText is the annotation as written, for messages.
	modelText string
	// minMemoryMiB is the minimum memory per GPU; 0 when not asked.
	minMemoryMiB  int64
	minMemoryText string
	// namesModel is set when the pod names a model by annotation, nodeSelector or node affinity.
	namesModel bool
	// daemon pods (DaemonSet-owned) follow their DaemonSet, never our CPU-pod rule.
	daemon bool
	// toleratesGPUTaint exempts a pod without GPUs from the CPU-pod rule.
	toleratesGPUTaint bool
}

// unitRequest is the pod's request of one GPU resource: its packing unit.
type unitRequest struct {
	name v1.ResourceName
	n    int64
	// memoryLabel is the node label with the memory of one unit: a slice's own, else the
	// memory label of whole GPUs.
	memoryLabel string
	slice       bool
}

func (r *gpuRequest) isGPUPod() bool { return len(r.units) > 0 }

// invalidRequestError is a problem with the pod's own spec: preemption or other pods cannot fix it.
type invalidRequestError struct{ msg string }

func (e *invalidRequestError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &invalidRequestError{msg: fmt.Sprintf(format, args...)}
}

// skuCatalog resolves names a pod may use in ModelAnnotation.
type skuCatalog struct {
	// byName maps a lower-cased SKU name to its lower-cased products.
	byName map[string][]string
	// products holds every lower-cased product that some SKU lists.
	products sets.Set[string]
	// special holds the lower-cased products of special SKUs, mapped to the SKU name.
	special map[string]string
	// names lists SKU names as configured, for messages.
	names []string
}

// requestLabels are the node labels a request is compared with.
type requestLabels struct {
	product, memory string
	// gpuTaint is the taint key whose toleration exempts a pod from the CPU-pod rule; "" none.
	gpuTaint string
}

// parseGPURequest reads the pod's GPU request and annotations. knownProduct reports whether a
// product value not listed in any SKU exists on some node; it is only called for such values.
func parseGPURequest(pod *v1.Pod, classes *gpuClasses, labels requestLabels, catalog *skuCatalog, knownProduct func(string) bool) (*gpuRequest, error) {
	req := &gpuRequest{units: podUnits(pod, classes, labels.memory), daemon: isDaemonPod(pod)}
	req.namesModel = selectsProductLabel(pod, labels.product)
	req.toleratesGPUTaint = !req.isGPUPod() && toleratesTaintKey(pod.Spec.Tolerations, labels.gpuTaint)

	if text, ok := pod.Annotations[ModelAnnotation]; ok {
		products, err := parseModels(text, catalog, knownProduct)
		if err != nil {
			return nil, err
		}
		req.products, req.modelText, req.namesModel = products, text, true
	}
	if text, ok := pod.Annotations[MinMemoryAnnotation]; ok {
		mib, err := parseMinMemory(text)
		if err != nil {
			return nil, err
		}
		req.minMemoryMiB, req.minMemoryText = mib, text
	}
	if !req.isGPUPod() && (req.products != nil || req.minMemoryMiB > 0) {
		return nil, invalidf("pod sets %s but requests no GPU (%s): add a GPU request or remove the annotation",
			presentAnnotations(pod), classes)
	}
	return req, nil
}

// podUnits is the pod's effective request (init containers and overhead included) of each GPU
// resource, sorted by name. memoryLabel is the memory label of units that are not slices.
func podUnits(pod *v1.Pod, classes *gpuClasses, memoryLabel string) []unitRequest {
	if !mentionsGPUs(pod, classes) {
		return nil
	}
	var units []unitRequest
	for name, q := range resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}) {
		gpu, slice := classes.match(name)
		if !gpu || q.Value() <= 0 {
			continue
		}
		u := unitRequest{name: name, n: q.Value(), memoryLabel: memoryLabel, slice: slice}
		if slice {
			u.memoryLabel = string(name) + memoryLabelSuffix
		}
		units = append(units, u)
	}
	slices.SortFunc(units, func(a, b unitRequest) int { return strings.Compare(string(a.name), string(b.name)) })
	return units
}

// countGPUs is the pod's request summed over every GPU resource, for the inventory gauges.
func countGPUs(pod *v1.Pod, classes *gpuClasses) int64 {
	if !mentionsGPUs(pod, classes) {
		return 0
	}
	var n int64
	for name, q := range resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}) {
		if gpu, _ := classes.match(name); gpu {
			n += q.Value()
		}
	}
	return n
}

// mentionsGPUs is a cheap first look: most pods name no GPU resource anywhere, and computing
// effective requests allocates. The metrics scrape walks every pod in the cluster.
func mentionsGPUs(pod *v1.Pod, classes *gpuClasses) bool {
	hasIn := func(l v1.ResourceList) bool {
		if onlyCommonResources(l) {
			return false
		}
		for name := range l {
			if gpu, _ := classes.match(name); gpu {
				return true
			}
		}
		return false
	}
	has := func(r v1.ResourceRequirements) bool { return hasIn(r.Requests) || hasIn(r.Limits) }
	for i := range pod.Spec.Containers {
		if has(pod.Spec.Containers[i].Resources) {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if has(pod.Spec.InitContainers[i].Resources) {
			return true
		}
	}
	if pod.Spec.Resources != nil && has(*pod.Spec.Resources) {
		return true
	}
	return hasIn(pod.Spec.Overhead)
}

// onlyCommonResources reports whether l names nothing but cpu, memory and ephemeral storage, as
// most containers' lists do. Three lookups decide it faster than a walk over l, whose iterator
// alone (a random start) cost more than the rest of mentionsGPUs.
func onlyCommonResources(l v1.ResourceList) bool {
	n := len(l)
	for _, name := range [...]v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		if n == 0 {
			break
		}
		if _, ok := l[name]; ok {
			n--
		}
	}
	return n == 0
}

// isDaemonPod reports whether a DaemonSet of the apps group controls the pod: a DaemonSet kind
// of another group is another controller, with no claim to run on every node.
func isDaemonPod(pod *v1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "DaemonSet" {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == appsv1.GroupName
}

// toleratesTaintKey reports whether the tolerations admit a NoSchedule taint with this key and
// any value, as upstream matches them: the key, or an empty key with Exists; effect NoSchedule
// or empty (all effects).
func toleratesTaintKey(tolerations []v1.Toleration, key string) bool {
	if key == "" {
		return false
	}
	for _, t := range tolerations {
		if t.Effect != "" && t.Effect != v1.TaintEffectNoSchedule {
			continue
		}
		if t.Key == key || (t.Key == "" && t.Operator == v1.TolerationOpExists) {
			return true
		}
	}
	return false
}

func parseModels(text string, catalog *skuCatalog, knownProduct func(string) bool) (sets.Set[string], error) {
	if strings.TrimSpace(text) == "" {
		return nil, invalidf("annotation %s is empty: name a GPU model; known SKUs: %s", ModelAnnotation, catalog.known())
	}
	products := sets.New[string]()
	for _, token := range strings.Split(text, ",") {
		name := strings.ToLower(strings.TrimSpace(token))
		if name == "" {
			return nil, invalidf("annotation %s=%q has an empty entry; known SKUs: %s", ModelAnnotation, text, catalog.known())
		}
		if skuProducts, ok := catalog.byName[name]; ok {
			products.Insert(skuProducts...)
			continue
		}
		if catalog.products.Has(name) || knownProduct(name) {
			products.Insert(name)
			continue
		}
		return nil, invalidf("annotation %s=%q names unknown GPU model %q; known SKUs: %s (or a %s value present on a node)",
			ModelAnnotation, text, strings.TrimSpace(token), catalog.known(), "product label")
	}
	return products, nil
}

// maxMinMemory bounds the annotation far above any GPU, so that arithmetic on it cannot overflow.
var maxMinMemory = resource.MustParse("1Pi")

func parseMinMemory(text string) (int64, error) {
	q, err := resource.ParseQuantity(strings.TrimSpace(text))
	if err != nil {
		return 0, invalidf("annotation %s=%q is not a quantity (use e.g. 40Gi): %v", MinMemoryAnnotation, text, err)
	}
	if q.Sign() <= 0 {
		return 0, invalidf("annotation %s=%q must be positive", MinMemoryAnnotation, text)
	}
	if q.Cmp(maxMinMemory) > 0 {
		return 0, invalidf("annotation %s=%q is more than %s per GPU", MinMemoryAnnotation, text, maxMinMemory.String())
	}
	// Round up: 40.5Gi must not match a 40Gi GPU.
	const mib = 1 << 20
	v := q.Value()
	mibs := v / mib
	if v%mib != 0 {
		mibs++
	}
	return mibs, nil
}

// selectsProductLabel reports whether the pod's nodeSelector or required node affinity
// constrains the product label; NodeAffinity enforces the match, we only note the choice.
func selectsProductLabel(pod *v1.Pod, productLabel string) bool {
	if _, ok := pod.Spec.NodeSelector[productLabel]; ok {
		return true
	}
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	// Every alternative must name the model, or the pod can still land on any GPU.
	for _, term := range terms {
		named := slices.ContainsFunc(term.MatchExpressions, func(r v1.NodeSelectorRequirement) bool {
			return r.Key == productLabel && r.Operator == v1.NodeSelectorOpIn
		})
		if !named {
			return false
		}
	}
	return true
}

func presentAnnotations(pod *v1.Pod) string {
	var parts []string
	for _, a := range []string{ModelAnnotation, MinMemoryAnnotation} {
		if v, ok := pod.Annotations[a]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", a, v))
		}
	}
	return strings.Join(parts, " and ")
}

func (c *skuCatalog) known() string {
	if len(c.names) == 0 {
		return "none configured"
	}
	return strings.Join(c.names, ", ")
}
