package sandbox

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

func TestWriteGangReport(t *testing.T) {
	group := func(name string, minMember int32, session bool, phase schedv1alpha1.PodGroupPhase, message string) schedv1alpha1.PodGroup {
		pg := schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ds", Name: name},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember},
			Status:     schedv1alpha1.PodGroupStatus{Phase: phase},
		}
		if session {
			pg.Labels = map[string]string{SessionLabel: "true"}
		}
		if message != "" {
			pg.Annotations = map[string]string{GangMessageAnnotation: message}
		}
		return pg
	}
	member := func(name, group, node, reason string, decided bool) Outcome {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ds", Name: name, Labels: map[string]string{PodGroupLabel: group}}}
		return Outcome{Pod: pod, Node: node, Reason: reason, Decided: decided}
	}
	tests := []struct {
		name     string
		groups   []schedv1alpha1.PodGroup
		outcomes []Outcome
		want     string
	}{
		{
			name: "no PodGroups, no section",
		},
		{
			name: "placed, not placed with the PodGroup's message, undecided with a member's reason",
			groups: []schedv1alpha1.PodGroup{
				group("wide", 3, false, schedv1alpha1.PodGroupPending, "gang ds/wide needs 3 pods x 8 nvidia.com/gpu; 2 nodes can host one, and only 2 fit together"),
				group("nb", 2, true, schedv1alpha1.PodGroupScheduling, "all 2 members placed"),
				group("slow", 2, false, "", ""),
			},
			outcomes: []Outcome{
				member("nb-0", "nb", "node-b", "", true),
				member("nb-1", "nb", "node-a", "", true),
				member("nb-2", "nb", "node-a", "", true),
				member("wide-0", "wide", "", "0/3 nodes are available: gang ds/wide needs more", true),
				member("wide-1", "wide", "", "0/3 nodes are available: gang ds/wide needs more", true),
				member("slow-0", "slow", "", "", false),
				member("slow-1", "slow", "", "gang ds/slow waits for members", true),
				{Pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ds", Name: "solo"}}, Node: "node-a", Decided: true},
			},
			want: `
Gangs (3 PodGroups; minMember of a gang's pods are placed together, or none):
GANG     KIND     MIN MEMBER  PODS  BOUND  RESULT      NODES
ds/nb    session  2           3     3      placed      node-a, node-b
ds/slow  batch    2           2     0      undecided   -
ds/wide  batch    3           2     0      not placed  -

Gangs not placed (the PodGroup's phase and workbench.dev/gang-message annotation):
  ds/slow (no phase): gang ds/slow waits for members
  ds/wide (Pending): gang ds/wide needs 3 pods x 8 nvidia.com/gpu; 2 nodes can host one, and only 2 fit together
`,
		},
		{
			name:   "fewer than minMember bound is shown as it is",
			groups: []schedv1alpha1.PodGroup{group("half", 2, false, schedv1alpha1.PodGroupScheduling, "")},
			outcomes: []Outcome{
				member("half-0", "half", "node-a", "", true),
				member("half-1", "half", "", "node(s) had untolerated taint", true),
			},
			want: `
Gangs (1 PodGroup; minMember of a gang's pods are placed together, or none):
GANG     KIND   MIN MEMBER  PODS  BOUND  RESULT         NODES
ds/half  batch  2           2     1      partly placed  node-a

Gangs not placed (the PodGroup's phase and workbench.dev/gang-message annotation):
  ds/half (Scheduling): node(s) had untolerated taint
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteGangReport(&b, tt.groups, tt.outcomes)
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}
