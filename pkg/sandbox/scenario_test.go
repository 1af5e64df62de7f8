package sandbox

import (
	"strings"
	"testing"
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
			name:  "custom resource passes to the server's dry run",
			input: "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: g, namespace: a}\nspec: {minMember: 2}\n",
			want:  []string{"PodGroup"},
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
	// 23 session pods + 1 default-scheduler pod + 3 hub replicas + 6 ETL pods + 1 interactive Job pod.
	if got := ExpectedPods(s); got != 34 {
		t.Errorf("ExpectedPods(demo) = %d, want 34", got)
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
