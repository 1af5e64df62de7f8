package gpuaffinity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

const preFilterStateKey fwk.StateKey = "PreFilter" + Name

// EventReasonInvalidGPURequest is the event reason for a pod whose GPU annotations are invalid.
const EventReasonInvalidGPURequest = "InvalidGPURequest"

type preFilterState struct {
	req *gpuRequest
	// draBacked is set when a DeviceClass maps a GPU resource name (DRAExtendedResource):
	// NodeResourcesFit then places such requests on nodes that list no GPUs.
	draBacked bool
	// narrowedTo is how many best-packed nodes PreFilter narrowed the cycle to; 0 when it did not.
	narrowedTo int
	// messages memoizes rejection reasons for this pod by what they say of the node: a CPU pod
	// is rejected by every GPU node, and formatting thousands of equal strings per cycle showed
	// up as scheduling latency at 5,000 nodes.
	messages sync.Map // messageKey -> string
}

// messageKey is what a rejection's message says of the node, cheap to build per node.
type messageKey struct {
	reason       rejectionReason
	product      string
	resource     v1.ResourceName
	label, value string
	n            int64
}

// Clone shares the state: nothing in it depends on other pods.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter parses the pod's GPU request once per cycle. An invalid annotation makes the pod
// unschedulable until its spec changes; the reason names the annotation and the value. A GPU
// pod's cycle is narrowed to the best-packed nodes that can hold it (see narrow), so that
// bin-packing sees them whatever percentageOfNodesToScore is; a pod without GPUs costs nothing
// more than the parse.
func (pl *GPUAffinity) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	req, err := pl.parse(pod)
	if err != nil {
		var invalid *invalidRequestError
		if !errors.As(err, &invalid) {
			return nil, fwk.AsStatus(err)
		}
		countRejection(reasonInvalidRequest)
		// The message quotes the pod's annotations: it must not be the format.
		pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, EventReasonInvalidGPURequest, "Scheduling", "%s", invalid.msg)
		klog.FromContext(ctx).V(2).Info("Invalid GPU request", "pod", klog.KObj(pod), "err", invalid.msg)
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, invalid.msg)
	}
	if !req.isGPUPod() && (!pl.denyCPUPods || req.daemon || req.toleratesGPUTaint) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s := &preFilterState{req: req, draBacked: req.isGPUPod() && pl.draBacked(req.units)}
	state.Write(preFilterStateKey, s)
	if !req.isGPUPod() {
		return nil, nil
	}
	if nodes := pl.narrow(ctx, state, pod, s); nodes != nil {
		return &fwk.PreFilterResult{NodeNames: nodes}, nil
	}
	return nil, nil
}

// PreFilterExtensions returns nil: our decisions do not depend on other pods.
func (pl *GPUAffinity) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

func getPreFilterState(state fwk.CycleState) (*preFilterState, error) {
	data, err := state.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preFilterStateKey, err)
	}
	s, ok := data.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v cannot be converted to *gpuaffinity.preFilterState", data)
	}
	return s, nil
}

// Filter applies the rules. Every rejection is UnschedulableAndUnresolvable: evicting pods
// cannot change a node's GPU model, and each reason says what the pod wanted and the node has.
func (pl *GPUAffinity) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(state)
	if err != nil {
		return fwk.AsStatus(err)
	}
	req := s.req
	node := nodeInfo.Node()
	if !req.isGPUPod() {
		// PreFilter let through only pods the CPU-pod rule applies to.
		ev, gpuNode := pl.gpuNodeEvidence(nodeInfo)
		if !gpuNode {
			return nil
		}
		product := node.Labels[pl.productLabel]
		return s.reject(messageKey{reason: reasonCPUPodGPUNode, product: product, resource: ev.resource, label: ev.label, n: ev.n}, func() string {
			return fmt.Sprintf("node is a GPU node (%s) and the pod requests no GPU; pods without a GPU request are kept off GPU nodes%s",
				ev.describe(orUnlabelled(product)), pl.exemptionHint)
		})
	}
	return pl.filterGPUPod(s, nodeInfo, strings.ToLower(node.Labels[pl.productLabel]), s.reject)
}

// rejectFunc turns a rejection into a status: Filter's counts and formats it (preFilterState.reject);
// PreFilter's judgement of candidates (quietReject) does neither.
type rejectFunc func(key messageKey, format func() string) *fwk.Status

// errNotACandidate is what quietReject returns: PreFilter only needs to know that Filter would
// refuse the node, not why.
var errNotACandidate = fwk.NewStatus(fwk.UnschedulableAndUnresolvable)

func quietReject(messageKey, func() string) *fwk.Status { return errNotACandidate }

// filterGPUPod applies the rules for a pod with a GPU request. PreFilter calls it too, to narrow
// the cycle to nodes that Filter accepts, so the two cannot disagree.
// lowerProduct is the node's product label lower-cased, which the caller may have at hand.
func (pl *GPUAffinity) filterGPUPod(s *preFilterState, nodeInfo fwk.NodeInfo, lowerProduct string, reject rejectFunc) *fwk.Status {
	req := s.req
	node := nodeInfo.Node()
	alloc := nodeInfo.GetAllocatable().GetScalarResources()
	for _, u := range req.units {
		if alloc[u.name] > 0 {
			continue
		}
		if s.draBacked {
			// A DeviceClass serves the resource (DRAExtendedResource): NodeResourcesFit places
			// such requests on nodes that list no GPUs, and decides alone.
			return nil
		}
		// NodeResourcesFit would reject it too, but only after a costly pass over every
		// resource; when bin-packing leaves few feasible nodes the scheduler visits all of
		// them, and this check is what keeps that cheap. No eviction adds GPUs: unresolvable.
		// A copy for the closure: capturing the loop variable would put it on the heap in
		// every iteration, as reject is a func value.
		name := u.name
		return reject(messageKey{reason: reasonNoGPUs, resource: name}, func() string {
			return fmt.Sprintf("node has no allocatable %s", name)
		})
	}
	product := node.Labels[pl.productLabel]
	if req.products != nil {
		if product == "" {
			return reject(messageKey{reason: reasonMissingLabel, label: pl.productLabel}, func() string {
				return fmt.Sprintf("pod asks for GPU model %s=%q; node has no %s label", ModelAnnotation, req.modelText, pl.productLabel)
			})
		}
		if !req.products.Has(lowerProduct) {
			return reject(messageKey{reason: reasonModelMismatch, product: product}, func() string {
				return fmt.Sprintf("pod asks for GPU model %s=%q; node has %s", ModelAnnotation, req.modelText, product)
			})
		}
	} else if product == "" {
		if !pl.genericOnUnlabelled {
			// Fail closed: a new node may be a special SKU that GPU Feature Discovery has not
			// labelled yet, and a generic pod placed there would stay.
			return reject(messageKey{reason: reasonUnlabelledGPUNode}, func() string {
				return fmt.Sprintf("node has GPUs but no %s label yet; a GPU node takes no GPU pods until its model is labelled", pl.productLabel)
			})
		}
	} else if sku, special := pl.catalog.special[lowerProduct]; special && !req.namesModel {
		return reject(messageKey{reason: reasonSpecialSKU, product: product}, func() string {
			return fmt.Sprintf("node has special GPU SKU %s (%s), reserved for pods that name it in %s", sku, product, ModelAnnotation)
		})
	}
	if req.minMemoryMiB > 0 {
		for _, u := range req.units {
			if st := s.checkMemory(req, u, node, product, reject); st != nil {
				return st
			}
		}
	}
	return nil
}

// checkMemory compares the pod's minimum memory with one unit's: a slice's own label (GPU
// Feature Discovery's nvidia.com/mig-1g.10gb.memory), else the memory label of whole GPUs.
func (s *preFilterState) checkMemory(req *gpuRequest, u unitRequest, node *v1.Node, product string, reject rejectFunc) *fwk.Status {
	text := node.Labels[u.memoryLabel]
	mib, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return reject(messageKey{reason: reasonMissingLabel, label: u.memoryLabel, value: text}, func() string {
			if u.slice {
				return fmt.Sprintf("pod asks for %s=%s per GPU and requests %s; node has no valid %s label (%q) giving that slice's memory",
					MinMemoryAnnotation, req.minMemoryText, u.name, u.memoryLabel, text)
			}
			return fmt.Sprintf("pod asks for %s=%s per GPU; node has no valid %s label (%q)", MinMemoryAnnotation, req.minMemoryText, u.memoryLabel, text)
		})
	}
	if mib >= req.minMemoryMiB {
		return nil
	}
	key := messageKey{reason: reasonMemoryTooSmall, product: product, n: mib}
	if u.slice {
		key.resource = u.name
	}
	return reject(key, func() string {
		if u.slice {
			return fmt.Sprintf("pod asks for %s=%s per GPU; node's %s slice (%s) has %d MiB", MinMemoryAnnotation, req.minMemoryText, u.name, orUnlabelled(product), mib)
		}
		return fmt.Sprintf("pod asks for %s=%s per GPU; node's %s has %d MiB", MinMemoryAnnotation, req.minMemoryText, orUnlabelled(product), mib)
	})
}

// reject counts the rejection and returns its status, formatting each distinct message once per
// cycle.
func (s *preFilterState) reject(key messageKey, format func() string) *fwk.Status {
	countRejection(key.reason)
	msg, ok := s.messages.Load(key)
	if !ok {
		msg, _ = s.messages.LoadOrStore(key, format())
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg.(string))
}

func orUnlabelled(product string) string {
	if product == "" {
		return "model unlabelled"
	}
	return product
}

// gpuEvidence is what makes a node a GPU node, for the CPU-pod rule and its message.
type gpuEvidence struct {
	// resource is the first GPU resource (by name) in the node's allocatable or capacity, and
	// n its allocatable: 0 while the device plugin restarts or every GPU is unhealthy, and
	// after a kubelet restart, which zeroes extended resources until plugins register again.
	resource v1.ResourceName
	n        int64
	// label is the node label that makes it one when no GPU resource does.
	label string
}

func (e gpuEvidence) describe(product string) string {
	switch {
	case e.label != "":
		return fmt.Sprintf("label %s, %s", e.label, product)
	case e.n == 0:
		return fmt.Sprintf("%s with 0 allocatable, %s", e.resource, product)
	default:
		return fmt.Sprintf("%d %s, %s", e.n, e.resource, product)
	}
}

// gpuNodeEvidence reports whether the node is a GPU node, failing closed: GPU resources in its
// allocatable or capacity count even at 0, and so do the product label, the count label and
// the configured node labels, which stay while the device plugin is down.
func (pl *GPUAffinity) gpuNodeEvidence(nodeInfo fwk.NodeInfo) (gpuEvidence, bool) {
	var ev gpuEvidence
	found := false
	for name, n := range nodeInfo.GetAllocatable().GetScalarResources() {
		if gpu, _ := pl.classes.match(name); gpu && (!found || name < ev.resource) {
			ev, found = gpuEvidence{resource: name, n: n}, true
		}
	}
	if found {
		return ev, true
	}
	node := nodeInfo.Node()
	// The kubelet keeps allocatable's keys those of capacity, so a resource in capacity only
	// makes capacity the longer: the length spares a walk over every CPU node's capacity, which
	// was most of this check's cost.
	if len(node.Status.Capacity) > len(node.Status.Allocatable) {
		for name := range node.Status.Capacity {
			if gpu, _ := pl.classes.match(name); gpu && (!found || name < ev.resource) {
				ev, found = gpuEvidence{resource: name}, true
			}
		}
		if found {
			return ev, true
		}
	}
	for _, key := range pl.gpuNodeLabels {
		if _, ok := node.Labels[key]; ok {
			return gpuEvidence{label: key}, true
		}
	}
	return ev, false
}
