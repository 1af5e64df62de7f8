package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
	"github.com/workbench-scheduler/workbench-scheduler/pkg/generated/clientset/versioned"
)

// The ResourcePool CRD that the control plane installs from manifests/crds enforces the API's
// validation, defaults and subresources in the real apiserver.
func TestResourcePoolCRD(t *testing.T) {
	client := workbenchClient(t)
	ctx := context.Background()

	t.Run("admission", func(t *testing.T) {
		byLabel := metav1.LabelSelector{MatchLabels: map[string]string{"workbench.dev/pool": "recsys"}}
		tests := []struct {
			name string
			spec workbenchv1alpha1.ResourcePoolSpec
			// wantErr is part of the Invalid error's message; empty means accepted.
			wantErr string
		}{
			{
				name: "team pool with matchLabels is accepted",
				spec: workbenchv1alpha1.ResourcePoolSpec{Owner: "ai/applied-ml/recsys", NodeSelector: byLabel},
			},
			{
				name: "shared lendable pool with matchExpressions is accepted",
				spec: workbenchv1alpha1.ResourcePoolSpec{Lendable: true, NodeSelector: metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "gpu", Operator: metav1.LabelSelectorOpIn, Values: []string{"a100", "h100"}},
						{Key: "spot", Operator: metav1.LabelSelectorOpDoesNotExist},
					},
				}},
			},
			{
				name:    "uppercase owner",
				spec:    workbenchv1alpha1.ResourcePoolSpec{Owner: "ai/Applied-ML", NodeSelector: byLabel},
				wantErr: "spec.owner",
			},
			{
				name:    "owner with a trailing slash",
				spec:    workbenchv1alpha1.ResourcePoolSpec{Owner: "ai/applied-ml/", NodeSelector: byLabel},
				wantErr: "spec.owner",
			},
			{
				name:    "owner with an empty segment",
				spec:    workbenchv1alpha1.ResourcePoolSpec{Owner: "ai//recsys", NodeSelector: byLabel},
				wantErr: "spec.owner",
			},
			{
				name:    "empty nodeSelector",
				spec:    workbenchv1alpha1.ResourcePoolSpec{Owner: "ai"},
				wantErr: "nodeSelector must have at least one requirement",
			},
			{
				name: "unknown selector operator",
				spec: workbenchv1alpha1.ResourcePoolSpec{Owner: "ai", NodeSelector: metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "gpu", Operator: "Equals", Values: []string{"a100"}}},
				}},
				wantErr: "operator must be In, NotIn, Exists or DoesNotExist",
			},
			{
				name: "In without values",
				spec: workbenchv1alpha1.ResourcePoolSpec{Owner: "ai", NodeSelector: metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "gpu", Operator: metav1.LabelSelectorOpIn}},
				}},
				wantErr: "In and NotIn need at least one value",
			},
			{
				name: "Exists with values",
				spec: workbenchv1alpha1.ResourcePoolSpec{Owner: "ai", NodeSelector: metav1.LabelSelector{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "gpu", Operator: metav1.LabelSelectorOpExists, Values: []string{"a100"}}},
				}},
				wantErr: "Exists and DoesNotExist take no values",
			},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				pool := &workbenchv1alpha1.ResourcePool{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("admission-%d", i)},
					Spec:       tc.spec,
				}
				_, err := client.WorkbenchV1alpha1().ResourcePools().Create(ctx, pool, metav1.CreateOptions{})
				if err == nil {
					deletePoolAtCleanup(t, client, pool.Name)
				}
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("want the pool accepted, got: %v", err)
				case tc.wantErr != "" && err == nil:
					t.Fatalf("want the pool rejected with %q, it was accepted", tc.wantErr)
				case tc.wantErr != "" && !apierrors.IsInvalid(err):
					t.Fatalf("want an Invalid error, got: %v", err)
				case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
					t.Fatalf("want an error about %q, got: %v", tc.wantErr, err)
				}
			})
		}
	})

	t.Run("lendable defaults to false", func(t *testing.T) {
		pool := createPool(t, client, "defaults", workbenchv1alpha1.ResourcePoolSpec{
			NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "shared"}},
		})
		// The typed client omits a false bool: read the stored object to see the default.
		raw, err := client.WorkbenchV1alpha1().RESTClient().Get().Resource("resourcepools").Name(pool.Name).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var stored struct {
			Spec map[string]any `json:"spec"`
		}
		if err := json.Unmarshal(raw, &stored); err != nil {
			t.Fatal(err)
		}
		if lendable, found := stored.Spec["lendable"]; !found || lendable != false {
			t.Errorf("stored spec.lendable = %v (present: %v), want false", lendable, found)
		}
	})

	t.Run("status is a subresource", func(t *testing.T) {
		spec := workbenchv1alpha1.ResourcePoolSpec{
			Owner:        "ai/applied-ml/recsys",
			NodeSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "recsys"}},
		}
		pool := &workbenchv1alpha1.ResourcePool{
			ObjectMeta: metav1.ObjectMeta{Name: "status-update"},
			Spec:       spec,
			Status:     workbenchv1alpha1.ResourcePoolStatus{Nodes: 7},
		}
		created, err := client.WorkbenchV1alpha1().ResourcePools().Create(ctx, pool, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deletePoolAtCleanup(t, client, pool.Name)
		if created.Status.Nodes != 0 {
			t.Errorf("create kept status.nodes = %d: status must be written only through /status", created.Status.Nodes)
		}

		created.Status = workbenchv1alpha1.ResourcePoolStatus{
			Nodes:              3,
			Capacity:           poolResources("96", "768Gi", "8"),
			Allocated:          poolResources("32", "256Gi", "6"),
			Free:               poolResources("64", "512Gi", "2"),
			ObservedGeneration: created.Generation,
			Conditions: []metav1.Condition{{
				Type: workbenchv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Selected",
				Message: "3 nodes", LastTransitionTime: metav1.Now(),
			}},
		}
		if _, err := client.WorkbenchV1alpha1().ResourcePools().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("UpdateStatus: %v", err)
		}
		got, err := client.WorkbenchV1alpha1().ResourcePools().Get(ctx, pool.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Nodes != 3 || got.Status.Free.CPU.Cmp(resource.MustParse("64")) != 0 || got.Status.Free.GPU.Cmp(resource.MustParse("2")) != 0 ||
			got.Status.ObservedGeneration != created.Generation || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != "Selected" {
			t.Errorf("status after UpdateStatus = %+v", got.Status)
		}

		// The printer columns render the status, as `kubectl get rpool` shows it.
		raw, err := client.WorkbenchV1alpha1().RESTClient().Get().Resource("resourcepools").Name(pool.Name).
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
		if err != nil {
			t.Fatalf("getting the pool as a Table: %v", err)
		}
		table := &metav1.Table{}
		if err := json.Unmarshal(raw, table); err != nil {
			t.Fatal(err)
		}
		if len(table.Rows) != 1 {
			t.Fatalf("table has %d rows, want 1", len(table.Rows))
		}
		cells := map[string]any{}
		for i, c := range table.ColumnDefinitions {
			if i < len(table.Rows[0].Cells) {
				cells[c.Name] = table.Rows[0].Cells[i]
			}
		}
		want := map[string]any{"Owner": "ai/applied-ml/recsys", "Nodes": int64(3), "Free CPU": "64", "Free GPU": "2"}
		for name, w := range want {
			if fmt.Sprint(cells[name]) != fmt.Sprint(w) {
				t.Errorf("column %q = %v, want %v (all cells: %v)", name, cells[name], w, cells)
			}
		}
	})

	t.Run("printer columns", func(t *testing.T) {
		crd, err := apiextensionsClient(t).ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "resourcepools.workbench.dev", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, v := range crd.Spec.Versions {
			if v.Name != workbenchv1alpha1.SchemeGroupVersion.Version {
				continue
			}
			for _, c := range v.AdditionalPrinterColumns {
				got[c.Name] = c.JSONPath
			}
		}
		want := map[string]string{
			"Owner":    ".spec.owner",
			"Lendable": ".spec.lendable",
			"Nodes":    ".status.nodes",
			"Free CPU": ".status.free.cpu",
			"Free GPU": ".status.free.gpu",
			"Age":      ".metadata.creationTimestamp",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("printer columns of v1alpha1 (-want +got):\n%s", diff)
		}
	})
}

func createPool(t *testing.T, client versioned.Interface, name string, spec workbenchv1alpha1.ResourcePoolSpec) *workbenchv1alpha1.ResourcePool {
	t.Helper()
	pool := &workbenchv1alpha1.ResourcePool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	created, err := client.WorkbenchV1alpha1().ResourcePools().Create(context.Background(), pool, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating ResourcePool %s: %v", name, err)
	}
	deletePoolAtCleanup(t, client, name)
	return created
}

func deletePoolAtCleanup(t *testing.T, client versioned.Interface, name string) {
	t.Cleanup(func() {
		_ = client.WorkbenchV1alpha1().ResourcePools().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func poolResources(cpu, memory, gpu string) workbenchv1alpha1.PoolResources {
	return workbenchv1alpha1.PoolResources{CPU: resource.MustParse(cpu), Memory: resource.MustParse(memory), GPU: resource.MustParse(gpu)}
}
