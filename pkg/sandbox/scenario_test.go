package sandbox

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestParseScenario(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    []string // kinds, in order
		wantErr string
	}{
		{
			name:  "stream with empty documents",
			input: "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n",
			want:  []string{"Namespace", "Node"},
		},
		{
			name:  "unknown custom resource passes to the server's dry run",
			input: "apiVersion: example.test/v1\nkind: Widget\nmetadata: {name: w, namespace: a}\nspec: {anything: 2}\n",
			want:  []string{"Widget"},
		},
		{
			name:  "PodGroup",
			input: "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: g, namespace: a, labels: {workbench.dev/session: \"true\"}}\nspec: {minMember: 2, scheduleTimeoutSeconds: 120}\n",
			want:  []string{"PodGroup"},
		},
		{
			name:    "PodGroup is decoded strictly",
			input:   "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: g, namespace: a}\nspec: {minMembers: 2}\n",
			wantErr: `document 1 (PodGroup a/g): strict decoding error: unknown field "spec.minMembers"`,
		},
		{
			name:    "misspelled field names document and object",
			input:   "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containrs: []}\n",
			wantErr: `document 2 (Pod a/p): strict decoding error: unknown field "spec.containrs"`,
		},
		{
			name:    "missing kind",
			input:   "apiVersion: v1\nmetadata: {name: a}\n",
			wantErr: "document 1 (object a): apiVersion and kind are required",
		},
		{
			name:    "missing name",
			input:   "apiVersion: v1\nkind: Node\nmetadata: {}\n",
			wantErr: "document 1 (Node ): metadata.name is required",
		},
		{
			name:    "invalid YAML",
			input:   "apiVersion: v1\nkind: Node\nmetadata: {name: [\n",
			wantErr: "document 1: invalid YAML",
		},
		{
			name:    "duplicate names both documents",
			input:   "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\n",
			wantErr: "documents 2 (Pod a/p) and 3 (Pod a/p) name the same object",
		},
		{
			name:    "no namespace is default",
			input:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			wantErr: "documents 1 (ConfigMap default/c) and 2 (ConfigMap c) name the same object",
		},
		{
			name:    "another version of the same group and kind is the same object",
			input:   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: d}\n",
			wantErr: "documents 1 (Deployment d) and 2 (Deployment d) name the same object",
		},
		{
			name:  "same name in another namespace, kind or group is another object",
			input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: b}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: a}\n---\napiVersion: example.test/v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n",
			want:  []string{"ConfigMap", "ConfigMap", "Secret", "ConfigMap"},
		},
		{
			name:    "cluster-scoped duplicate",
			input:   "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n",
			wantErr: "documents 1 (Node node-1) and 2 (Node node-1)",
		},
		{
			name:    "wrong type",
			input:   "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec: {unschedulable: maybe}\n",
			wantErr: "document 1 (Node node-1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseScenario(strings.NewReader(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
			}
			if strings.Join(kinds, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("kinds = %v, want %v", kinds, tt.want)
			}
		})
	}
}

func TestApplyOrder(t *testing.T) {
	doc := func(apiVersion, kind, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName(name)
		return u
	}
	tests := []struct {
		name                  string
		objs                  []*unstructured.Unstructured
		wantFoundations, rest []int
	}{
		{
			name: "no foundations",
			objs: []*unstructured.Unstructured{doc("v1", "Node", "n"), doc("v1", "Pod", "p")},
			rest: []int{0, 1},
		},
		{
			name: "namespaces, then priority classes, then CRDs, each in document order; the rest in document order",
			objs: []*unstructured.Unstructured{
				doc("v1", "Pod", "p"),
				doc("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.test"),
				doc("scheduling.k8s.io/v1", "PriorityClass", "high"),
				doc("example.test/v1", "Widget", "w"),
				doc("v1", "Namespace", "b"),
				doc("scheduling.k8s.io/v1", "PriorityClass", "low"),
				doc("v1", "Namespace", "a"),
				doc("apps/v1", "Deployment", "d"),
			},
			wantFoundations: []int{4, 6, 2, 5, 1},
			rest:            []int{0, 3, 7},
		},
		{
			name: "a kind named like a foundation in another group is not one",
			objs: []*unstructured.Unstructured{
				doc("example.test/v1", "Namespace", "n"),
				doc("example.test/v1", "PriorityClass", "p"),
			},
			rest: []int{0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			foundations, rest := applyOrder(tt.objs)
			if diff := cmp.Diff(tt.wantFoundations, foundations); diff != "" {
				t.Errorf("foundations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.rest, rest); diff != "" {
				t.Errorf("rest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDemoScenarioIsValidAndExpectsEveryPod(t *testing.T) {
	s, err := LoadScenario("demo")
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range s.Objects {
		if err := checkObject(u); err != nil {
			t.Errorf("demo object %d (%s): %v", i+1, describe(u), err)
		}
	}
	// 23 session pods + 1 default-scheduler pod + 3 hub replicas + 6 ETL pods + 1 interactive Job
	// pod + 9 members of three gangs (3 + 2 + 4).
	if got := ExpectedPods(s); got != 43 {
		t.Errorf("ExpectedPods(demo) = %d, want 43", got)
	}
}

// The parser takes user files: it must return an error, never panic.
func FuzzParseScenario(f *testing.F) {
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n")
	f.Add("---\n---\n{}\n")
	f.Add("apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus: {allocatable: {cpu: 4x}}\n")
	f.Add("[1, 2]")
	f.Fuzz(func(t *testing.T, input string) {
		_, _ = ParseScenario(strings.NewReader(input))
	})
}
