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

// Rejection reasons, as metric label values.
const (
	reasonInvalidRequest = "invalid_request"
	reasonCPUPodGPUNode  = "cpu_pod_on_gpu_node"
	reasonSpecialSKU     = "special_sku"
	reasonModelMismatch  = "model_mismatch"
	reasonMemoryTooSmall = "memory_too_small"
	reasonMissingLabel   = "missing_label"
	reasonNoGPUs         = "no_gpus"
)

// EventReasonInvalidGPURequest is the event reason for a pod whose GPU annotations are invalid.
const EventReasonInvalidGPURequest = "InvalidGPURequest"

type preFilterState struct {
	req *gpuRequest
	// draBacked is set when a DeviceClass maps a GPU resource name (DRAExtendedResource):
	// NodeResourcesFit then places such requests on nodes that list no GPUs.
	draBacked bool
	// messages memoizes rejection reasons for this pod by what they say of the node: a CPU pod
	// is rejected by every GPU node, and formatting thousands of equal strings per cycle showed
	// up as scheduling latency at 5,000 nodes.
	messages sync.Map // messageKey -> string
}

type messageKey struct {
	reason, product string
	n               int64
}

// Clone shares the state: nothing in it depends on other pods.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter parses the pod's GPU request once per cycle. An invalid annotation makes the pod
// unschedulable until its spec changes; the reason names the annotation and the value.
func (pl *GPUAffinity) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	req, err := pl.parse(pod)
	if err != nil {
		var invalid *invalidRequestError
		if !errors.As(err, &invalid) {
			return nil, fwk.AsStatus(err)
		}
		countRejection(reasonInvalidRequest)
		pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, EventReasonInvalidGPURequest, "Scheduling", invalid.msg)
		klog.FromContext(ctx).V(2).Info("Invalid GPU request", "pod", klog.KObj(pod), "err", invalid.msg)
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, invalid.msg)
	}
	if req.gpus == 0 && (!pl.denyCPUPods || req.daemon) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	state.Write(preFilterStateKey, &preFilterState{req: req, draBacked: req.gpus > 0 && pl.draBackedGPUs()})
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
	allocatable := pl.allocatableGPUsOf(nodeInfo)
	if allocatable == 0 {
		if req.gpus > 0 && !s.draBacked {
			// NodeResourcesFit would reject it too, but only after a costly pass over every
			// resource; when bin-packing leaves few feasible nodes the scheduler visits all of
			// them, and this check is what keeps that cheap. No eviction can add GPUs: unresolvable.
			countRejection(reasonNoGPUs)
			return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, pl.noGPUsMessage)
		}
		return nil
	}
	node := nodeInfo.Node()
	product := node.Labels[pl.productLabel]
	if req.gpus == 0 {
		return s.reject(messageKey{reasonCPUPodGPUNode, product, allocatable}, func() string {
			return fmt.Sprintf("node has %d GPUs (%s) and the pod requests none; pods without a GPU request are kept off GPU nodes", allocatable, orUnlabelled(product))
		})
	}
	lowerProduct := strings.ToLower(product)
	if req.products != nil {
		if product == "" {
			return s.reject(messageKey{reasonMissingLabel, pl.productLabel, 0}, func() string {
				return fmt.Sprintf("pod asks for GPU model %s=%q; node has no %s label", ModelAnnotation, req.modelText, pl.productLabel)
			})
		}
		if !req.products.Has(lowerProduct) {
			return s.reject(messageKey{reasonModelMismatch, product, 0}, func() string {
				return fmt.Sprintf("pod asks for GPU model %s=%q; node has %s", ModelAnnotation, req.modelText, product)
			})
		}
	} else if sku, special := pl.catalog.special[lowerProduct]; special && !req.namesModel {
		return s.reject(messageKey{reasonSpecialSKU, product, 0}, func() string {
			return fmt.Sprintf("node has special GPU SKU %s (%s), reserved for pods that name it in %s", sku, product, ModelAnnotation)
		})
	}
	if req.minMemoryMiB > 0 {
		text := node.Labels[pl.memoryLabel]
		mib, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return s.reject(messageKey{reasonMissingLabel, pl.memoryLabel + "=" + text, 0}, func() string {
				return fmt.Sprintf("pod asks for %s=%s per GPU; node has no valid %s label (%q)", MinMemoryAnnotation, req.minMemoryText, pl.memoryLabel, text)
			})
		}
		if mib < req.minMemoryMiB {
			return s.reject(messageKey{reasonMemoryTooSmall, product, mib}, func() string {
				return fmt.Sprintf("pod asks for %s=%s per GPU; node's %s has %d MiB", MinMemoryAnnotation, req.minMemoryText, orUnlabelled(product), mib)
			})
		}
	}
	return nil
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
