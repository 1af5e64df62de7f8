package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/workbench-scheduler/workbench-scheduler/pkg/sandbox"
)

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// renderManifests is `kubectl kustomize manifests/`, through the same kustomize library.
func renderManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), repoPath("manifests"))
	if err != nil {
		t.Fatalf("kustomize manifests/: %v", err)
	}
	yamlStream, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := sandbox.ParseScenario(bytes.NewReader(yamlStream))
	if err != nil {
		t.Fatalf("rendered manifests: %v", err)
	}
	return objs
}

func renderedSchedulerConfig(t *testing.T) []byte {
	t.Helper()
	for _, u := range renderManifests(t) {
		if u.GetKind() != "ConfigMap" {
			continue
		}
		data, found, err := unstructured.NestedString(u.Object, "data", "config.yaml")
		if err != nil || !found {
			t.Fatalf("ConfigMap %s has no data[config.yaml]", u.GetName())
		}
		return []byte(data)
	}
	t.Fatal("the rendered manifests have no ConfigMap")
	return nil
}

// Every object kustomize renders, and every example, is accepted by a real apiserver: validated
// (dry run) before anything is created, then created.
func TestManifestsAreAcceptedByTheAPIServer(t *testing.T) {
	objs := renderManifests(t)
	if len(objs) < 10 {
		t.Fatalf("rendered %d objects, expected the full set (namespace, RBAC, config, deployment, PDB)", len(objs))
	}
	kinds := map[string]bool{}
	for _, u := range objs {
		kinds[u.GetKind()] = true
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Deployment", "PodDisruptionBudget"} {
		if !kinds[k] {
			t.Errorf("rendered manifests lack a %s", k)
		}
	}
	apply(t, objs)

	examples, err := filepath.Glob(repoPath("manifests", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, path := range examples {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		exampleObjs, err := sandbox.ParseScenario(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ns := testNamespace(t)
		for _, u := range exampleObjs {
			u.SetNamespace(ns)
		}
		apply(t, exampleObjs)
	}
}

func apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	// Another test in this package may have applied the same objects, and the control plane
	// installs the CRDs (from the same files) when it starts: what exists was accepted then.
	dc, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	var fresh []*unstructured.Unstructured
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			fresh = append(fresh, u) // Apply names what the apiserver does not serve.
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
		}
		if _, err := ri.Get(context.Background(), u.GetName(), metav1.GetOptions{}); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		fresh = append(fresh, u)
	}
	if err := sandbox.Apply(context.Background(), cp.Config, &sandbox.Scenario{Name: "manifests", Objects: fresh}); err != nil {
		t.Fatal(err)
	}
}
