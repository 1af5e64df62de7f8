package topologyspread

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	"k8s.io/utils/ptr"
)

// topologySpreadConstraint is a parsed v1.TopologySpreadConstraint, as upstream's plugin keeps it.
type topologySpreadConstraint struct {
	MaxSkew            int32
	TopologyKey        string
	Selector           labels.Selector
	MinDomains         int32
	NodeAffinityPolicy v1.NodeInclusionPolicy
	NodeTaintsPolicy   v1.NodeInclusionPolicy
}

// The functions below reproduce upstream's (podtopologyspread/common.go, v1.37.2) line for line:
// the differential test holds them to it.

func (pl *IndexedPodTopologySpread) matchNodeInclusionPolicies(logger klog.Logger, c *topologySpreadConstraint, pod *v1.Pod, node *v1.Node, require nodeaffinity.RequiredNodeAffinity) bool {
	if c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor {
		if match, _ := require.Match(node); !match {
			return false
		}
	}
	if c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor {
		if _, untolerated := v1helper.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, pod.Spec.Tolerations, helper.DoNotScheduleTaintsFilterFunc(), pl.fts.EnableTaintTolerationComparisonOperators); untolerated {
			return false
		}
	}
	return true
}

// getConstraints returns the pod's constraints with the given action, or the default ones when
// the pod declares none.
func (pl *IndexedPodTopologySpread) getConstraints(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]topologySpreadConstraint, error) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		return pl.filterTopologySpreadConstraints(pod.Spec.TopologySpreadConstraints, pod.Labels, action)
	}
	return pl.buildDefaultConstraints(pod, action)
}

func (pl *IndexedPodTopologySpread) buildDefaultConstraints(p *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]topologySpreadConstraint, error) {
	constraints, err := pl.filterTopologySpreadConstraints(pl.defaultConstraints, p.Labels, action)
	if err != nil || len(constraints) == 0 {
		return nil, err
	}
	selector := helper.DefaultSelector(p, pl.services, pl.replicationCtrls, pl.replicaSets, pl.statefulSets)
	if selector.Empty() {
		return nil, nil
	}
	for i := range constraints {
		constraints[i].Selector = selector
	}
	return constraints, nil
}

func nodeLabelsMatchSpreadConstraints(nodeLabels map[string]string, constraints []topologySpreadConstraint) bool {
	for _, c := range constraints {
		if _, ok := nodeLabels[c.TopologyKey]; !ok {
			return false
		}
	}
	return true
}

func (pl *IndexedPodTopologySpread) filterTopologySpreadConstraints(constraints []v1.TopologySpreadConstraint, podLabels map[string]string, action v1.UnsatisfiableConstraintAction) ([]topologySpreadConstraint, error) {
	var result []topologySpreadConstraint
	for _, c := range constraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, err
		}
		if pl.fts.EnableMatchLabelKeysInPodTopologySpread && len(c.MatchLabelKeys) > 0 {
			matchLabels := make(labels.Set)
			for _, labelKey := range c.MatchLabelKeys {
				if value, ok := podLabels[labelKey]; ok {
					matchLabels[labelKey] = value
				}
			}
			if len(matchLabels) > 0 {
				selector = mergeLabelSetWithSelector(matchLabels, selector)
			}
		}
		tsc := topologySpreadConstraint{
			MaxSkew:            c.MaxSkew,
			TopologyKey:        c.TopologyKey,
			Selector:           selector,
			MinDomains:         ptr.Deref(c.MinDomains, 1),
			NodeAffinityPolicy: v1.NodeInclusionPolicyHonor,
			NodeTaintsPolicy:   v1.NodeInclusionPolicyIgnore,
		}
		if pl.fts.EnableNodeInclusionPolicyInPodTopologySpread {
			if c.NodeAffinityPolicy != nil {
				tsc.NodeAffinityPolicy = *c.NodeAffinityPolicy
			}
			if c.NodeTaintsPolicy != nil {
				tsc.NodeTaintsPolicy = *c.NodeTaintsPolicy
			}
		}
		result = append(result, tsc)
	}
	return result, nil
}

func mergeLabelSetWithSelector(matchLabels labels.Set, s labels.Selector) labels.Selector {
	mergedSelector := labels.SelectorFromSet(matchLabels)
	requirements, ok := s.Requirements()
	if !ok {
		return s
	}
	for _, r := range requirements {
		mergedSelector = mergedSelector.Add(r)
	}
	return mergedSelector
}

// countPodsMatchSelector counts like upstream: terminating pods and other namespaces are left
// out, and an empty selector counts nothing.
func countPodsMatchSelector(podInfos []fwk.PodInfo, selector labels.Selector, ns string) int {
	if selector.Empty() {
		return 0
	}
	count := 0
	for _, p := range podInfos {
		pod := p.GetPod()
		if pod.DeletionTimestamp != nil || pod.Namespace != ns {
			continue
		}
		if selector.Matches(labels.Set(pod.Labels)) {
			count++
		}
	}
	return count
}

// nodeFilter is the part of the incoming pod that decides which nodes a constraint counts:
// its required node affinity (NodeAffinityPolicy Honor) and its tolerations (NodeTaintsPolicy
// Honor). Pods with equal keys count the same nodes, so they share one layout.
type nodeFilter struct {
	key         string
	affinity    *nodeaffinity.RequiredNodeAffinity
	tolerations []v1.Toleration
	// names, when not nil, holds every node the affinity can match (it names them with
	// matchFields metadata.name, as DaemonSet pods do), so the layout is built from them alone.
	names []string
}

// nodeFilterFor returns the filter for one constraint of pod.
func (pl *IndexedPodTopologySpread) nodeFilterFor(pod *v1.Pod, c *topologySpreadConstraint, keys *podKeys, affinity *nodeaffinity.RequiredNodeAffinity) nodeFilter {
	var f nodeFilter
	var b strings.Builder
	// A pod without required affinity matches every node, so it needs no affinity check.
	if !pl.fts.EnableNodeInclusionPolicyInPodTopologySpread || c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor {
		if k := keys.affinity(); k != "" {
			f.affinity = affinity
			f.names = keys.names
			b.WriteString("a:")
			b.WriteString(k)
		}
	}
	if pl.fts.EnableNodeInclusionPolicyInPodTopologySpread && c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor {
		f.tolerations = pod.Spec.Tolerations
		if f.tolerations == nil {
			f.tolerations = []v1.Toleration{}
		}
		b.WriteString("\x00t:")
		b.WriteString(keys.tolerations())
	}
	f.key = b.String()
	return f
}

// podKeys computes, once per cycle and only when asked, canonical keys for the pod's required
// node affinity and its tolerations: equal specs give equal keys.
type podKeys struct {
	pod              *v1.Pod
	aff, tol         string
	affDone, tolDone bool
	names            []string
}

func newPodKeys(pod *v1.Pod) *podKeys { return &podKeys{pod: pod} }

func (k *podKeys) affinity() string {
	if k.affDone {
		return k.aff
	}
	k.affDone = true
	pod := k.pod
	var required *v1.NodeSelector
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		required = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(pod.Spec.NodeSelector) == 0 && required == nil {
		return ""
	}
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(pod.Spec.NodeSelector)) {
		writeKeyPart(&b, key)
		writeKeyPart(&b, pod.Spec.NodeSelector[key])
	}
	if required != nil {
		b.WriteString("\x02")
		names := []string{}
		for _, term := range required.NodeSelectorTerms {
			b.WriteString("\x03")
			writeRequirements(&b, term.MatchExpressions)
			b.WriteString("\x04")
			writeRequirements(&b, term.MatchFields)
			if names != nil {
				names = appendNamedNodes(names, term.MatchFields)
			}
		}
		if len(required.NodeSelectorTerms) > 0 {
			k.names = names
		}
	}
	k.aff = b.String()
	return k.aff
}

// appendNamedNodes adds the nodes a term's metadata.name In requirement names, or returns nil
// when the term can match a node by other fields.
func appendNamedNodes(names []string, fields []v1.NodeSelectorRequirement) []string {
	for _, r := range fields {
		if r.Key == metav1.ObjectNameField && r.Operator == v1.NodeSelectorOpIn {
			return append(names, r.Values...)
		}
	}
	return nil
}

func writeRequirements(b *strings.Builder, reqs []v1.NodeSelectorRequirement) {
	for _, r := range reqs {
		writeKeyPart(b, r.Key)
		writeKeyPart(b, string(r.Operator))
		for _, v := range r.Values {
			writeKeyPart(b, v)
		}
		b.WriteByte('\x05')
	}
}

func (k *podKeys) tolerations() string {
	if k.tolDone {
		return k.tol
	}
	k.tolDone = true
	var b strings.Builder
	for _, t := range k.pod.Spec.Tolerations {
		writeKeyPart(&b, t.Key)
		writeKeyPart(&b, string(t.Operator))
		writeKeyPart(&b, t.Value)
		writeKeyPart(&b, string(t.Effect))
		if t.TolerationSeconds != nil {
			b.WriteString(strconv.FormatInt(*t.TolerationSeconds, 10))
		}
		b.WriteByte('\x05')
	}
	k.tol = b.String()
	return k.tol
}

// writeKeyPart writes s length-prefixed, so no value can forge a separator.
func writeKeyPart(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}
