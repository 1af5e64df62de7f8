// Package sandbox seeds a local control plane with a scenario, runs the controllers that turn
// Jobs and Deployments into pods, waits for the scheduler to decide every pod and reports where
// each one went.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	workbenchv1alpha1 "github.com/workbench-scheduler/workbench-scheduler/pkg/apis/workbench/v1alpha1"
)

// Scenario is an ordered list of objects to create in the sandbox.
type Scenario struct {
	Name    string
	Objects []*unstructured.Unstructured
}

// LoadScenario resolves --scenario: "demo", "none", or a path to a YAML stream.
func LoadScenario(name string) (*Scenario, error) {
	switch name {
	case "none", "":
		return &Scenario{Name: "none"}, nil
	case "demo":
		objs, err := toUnstructured(DemoObjects())
		if err != nil {
			return nil, fmt.Errorf("building the demo scenario: %w", err)
		}
		return &Scenario{Name: "demo", Objects: objs}, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	objs, err := ParseScenario(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return &Scenario{Name: name, Objects: objs}, nil
}

// ParseScenario decodes a YAML (or JSON) stream. Documents are numbered from 1 in errors. Kinds
// that client-go knows are decoded strictly, so a misspelled field is an error, not a no-op.
func ParseScenario(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for index := 1; ; index++ {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: invalid YAML: %w", index, err)
		}
		if len(raw) == 0 {
			index--
			continue
		}
		u := &unstructured.Unstructured{Object: raw}
		if err := checkObject(u); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", index, describe(u), err)
		}
		objs = append(objs, u)
	}
}

// scheme knows the built-in kinds and workbench-scheduler's own, for strict decoding.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(workbenchv1alpha1.AddToScheme(s))
	return s
}()

func checkObject(u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return errors.New("apiVersion and kind are required")
	}
	if u.GetName() == "" {
		return errors.New("metadata.name is required")
	}
	typed, err := scheme.New(gvk)
	if err != nil {
		// Not a built-in kind (a CRD, say): the apiserver's dry run validates it.
		return nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, typed, true); err != nil {
		return err
	}
	return nil
}

func describe(u *unstructured.Unstructured) string {
	kind := u.GetKind()
	if kind == "" {
		kind = "object"
	}
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", kind, ns, u.GetName())
	}
	return fmt.Sprintf("%s %s", kind, u.GetName())
}

func toUnstructured(objs []runtime.Object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil {
			return nil, err
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvks[0])
		out = append(out, u)
	}
	return out, nil
}

// Apply validates every object with a server-side dry run and creates them only if all pass:
// a bad document applies nothing. Namespaces are created first so the rest can land in them.
func Apply(ctx context.Context, cfg *rest.Config, s *Scenario) error {
	if len(s.Objects) == 0 {
		return nil
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	declaredNamespaces := map[string]bool{}
	for _, u := range s.Objects {
		if isNamespaceDoc(u) {
			declaredNamespaces[u.GetName()] = true
		}
	}
	resourceFor := func(u *unstructured.Unstructured) (dynamic.ResourceInterface, bool, error) {
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, false, fmt.Errorf("the apiserver does not serve %s: %w", gvk, err)
		}
		if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
			return dyn.Resource(mapping.Resource), false, nil
		}
		if u.GetNamespace() == "" {
			u.SetNamespace(metav1.NamespaceDefault)
		}
		return dyn.Resource(mapping.Resource).Namespace(u.GetNamespace()), true, nil
	}

	for i, u := range s.Objects {
		ri, namespaced, err := resourceFor(u)
		if err != nil {
			return fmt.Errorf("document %d (%s): %w", i+1, describe(u), err)
		}
		probe := u
		if namespaced && declaredNamespaces[u.GetNamespace()] {
			// Its namespace does not exist until we apply: dry-run in an existing one instead.
			probe = u.DeepCopy()
			probe.SetNamespace(metav1.NamespaceDefault)
			ri, _, _ = resourceFor(probe)
		}
		if _, err := ri.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			return fmt.Errorf("document %d (%s) is invalid, nothing was applied: %w", i+1, describe(u), err)
		}
	}

	ordered := make([]int, 0, len(s.Objects))
	for i, u := range s.Objects {
		if isNamespaceDoc(u) {
			ordered = append(ordered, i)
		}
	}
	for i, u := range s.Objects {
		if !isNamespaceDoc(u) {
			ordered = append(ordered, i)
		}
	}
	for _, i := range ordered {
		u := s.Objects[i]
		ri, _, err := resourceFor(u)
		if err == nil {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
		}
		if err != nil {
			return fmt.Errorf("document %d (%s): creating: %w", i+1, describe(u), err)
		}
	}
	return nil
}

// isNamespaceDoc reports whether a document is a core Namespace.
func isNamespaceDoc(u *unstructured.Unstructured) bool {
	return u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1"
}
