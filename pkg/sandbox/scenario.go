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
	"slices"
	"sort"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

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
// that client-go knows are decoded strictly, so a misspelled field is an error, not a no-op. Two
// documents naming the same object (kind, namespace and name; no namespace means default) are an
// error naming both, since the second would fail halfway through applying the scenario.
func ParseScenario(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for index := 1; ; index++ {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
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
	// The scope of a kind is known only to the apiserver: here an object without a namespace is
	// taken to be in default, which is where Apply puts a namespaced one. Apply checks again
	// with the real scopes.
	if err := checkDuplicates(objs, allIndexes(objs), defaultedNamespace(objs)); err != nil {
		return nil, err
	}
	return objs, nil
}

// objectKey is what the apiserver identifies an object by. The version is not part of it:
// apps/v1 and apps/v1beta2 Deployments of one name are the same object.
type objectKey struct {
	group, kind, namespace, name string
}

// checkDuplicates returns an error naming the first two documents, among objs[indexes], that
// have the same key. Document numbers count from 1 over all of objs.
func checkDuplicates(objs []*unstructured.Unstructured, indexes []int, namespaceOf func(i int) string) error {
	seen := make(map[objectKey]int, len(indexes))
	for _, i := range indexes {
		u := objs[i]
		gvk := u.GroupVersionKind()
		key := objectKey{group: gvk.Group, kind: gvk.Kind, namespace: namespaceOf(i), name: u.GetName()}
		if first, ok := seen[key]; ok {
			return fmt.Errorf("documents %d (%s) and %d (%s) name the same object: each object may appear once",
				first+1, describe(objs[first]), i+1, describe(u))
		}
		seen[key] = i
	}
	return nil
}

// defaultedNamespace is an object's namespace, default when it has none.
func defaultedNamespace(objs []*unstructured.Unstructured) func(int) string {
	return func(i int) string {
		if ns := objs[i].GetNamespace(); ns != "" {
			return ns
		}
		return metav1.NamespaceDefault
	}
}

func allIndexes(objs []*unstructured.Unstructured) []int {
	all := make([]int, len(objs))
	for i := range all {
		all[i] = i
	}
	return all
}

// scheme knows the built-in kinds, workbench-scheduler's own and scheduler-plugins' PodGroup
// (Gang's API), for strict decoding.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(workbenchv1alpha1.AddToScheme(s))
	utilruntime.Must(schedv1alpha1.AddToScheme(s))
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

// foundationRank orders the kinds other documents depend on, which are created before those
// can even be validated: a namespaced object's dry run needs its namespace, pod admission
// resolves priorityClassName, and a custom resource's kind exists only once its
// CustomResourceDefinition is established. All three are cluster-scoped and depend on nothing
// in a scenario.
var foundationRank = map[schema.GroupKind]int{
	{Group: "", Kind: "Namespace"}:                                    1,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:               2,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: 3,
}

var crdGroupKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// applyOrder splits document indexes into foundations (Namespaces, PriorityClasses, then
// CustomResourceDefinitions, each kind in document order) and the rest, in document order.
func applyOrder(objs []*unstructured.Unstructured) (foundations, rest []int) {
	for i, u := range objs {
		if _, ok := foundationRank[u.GroupVersionKind().GroupKind()]; ok {
			foundations = append(foundations, i)
		} else {
			rest = append(rest, i)
		}
	}
	sort.SliceStable(foundations, func(a, b int) bool {
		return foundationRank[objs[foundations[a]].GroupVersionKind().GroupKind()] <
			foundationRank[objs[foundations[b]].GroupVersionKind().GroupKind()]
	})
	return foundations, rest
}

// Apply creates a scenario's objects, all or nothing. Each document is validated by a
// server-side dry run before it is created. The rest cannot be validated before the foundations
// exist (see foundationRank), so Apply validates the foundations, creates them, then validates
// the rest; if any of it is invalid, it deletes the foundations it created and reports the
// document, so that an invalid scenario leaves nothing behind.
func Apply(ctx context.Context, cfg *rest.Config, s *Scenario) error {
	if len(s.Objects) == 0 {
		return nil
	}
	objs := s.Objects
	// Scenarios built without ParseScenario get the same check.
	if err := checkDuplicates(objs, allIndexes(objs), defaultedNamespace(objs)); err != nil {
		return fmt.Errorf("%w; nothing was applied", err)
	}
	a, err := newApplier(cfg)
	if err != nil {
		return err
	}
	foundations, rest := applyOrder(objs)

	if err := a.dryRun(ctx, objs, foundations); err != nil {
		return fmt.Errorf("%w; nothing was applied", err)
	}
	var created []int
	// undo removes what this call created and says so in the error it returns.
	undo := func(cause error) error {
		if err := a.remove(ctx, objs, created); err != nil {
			return fmt.Errorf("%w; removing the %d objects created before it also failed: %v", cause, len(created), err)
		}
		return fmt.Errorf("%w; nothing was applied", cause)
	}
	for _, i := range foundations {
		if err := a.create(ctx, objs[i]); err != nil {
			return undo(fmt.Errorf("document %d (%s): creating: %w", i+1, describe(objs[i]), err))
		}
		created = append(created, i)
	}
	if err := a.waitForCRDs(ctx, objs, foundations); err != nil {
		return undo(err)
	}

	// Now that every kind exists, scopes are known: a cluster-scoped object ignores the
	// namespace it was given, so two that differ only there are the same object.
	namespaced := make(map[int]bool, len(rest))
	for _, i := range rest {
		_, ns, err := a.resourceFor(objs[i])
		if err != nil {
			return undo(fmt.Errorf("document %d (%s): %w", i+1, describe(objs[i]), err))
		}
		namespaced[i] = ns
	}
	if err := checkDuplicates(objs, rest, func(i int) string {
		if namespaced[i] {
			return objs[i].GetNamespace()
		}
		return ""
	}); err != nil {
		return undo(err)
	}
	if err := a.dryRunAfterFoundations(ctx, objs, rest); err != nil {
		return undo(err)
	}
	for _, i := range rest {
		if err := a.create(ctx, objs[i]); err != nil {
			// Every document passed its dry run, so this is a conflict with something created
			// meanwhile. What was created stays: deleting a workload needs the garbage
			// collector, which the sandbox does not run, to remove its pods.
			return fmt.Errorf("document %d (%s): creating: %w (documents created before it remain)", i+1, describe(objs[i]), err)
		}
	}
	return nil
}

// applier creates and deletes scenario objects of any kind the apiserver serves.
type applier struct {
	mapper    *restmapper.DeferredDiscoveryRESTMapper
	dynamic   dynamic.Interface
	discovery discovery.DiscoveryInterface
	client    kubernetes.Interface
}

func newApplier(cfg *rest.Config) (*applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &applier{
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		dynamic:   dyn,
		discovery: dc,
		client:    client,
	}, nil
}

// resourceFor maps u to its resource, putting a namespaced object without a namespace in
// default, and reports whether it is namespaced.
func (a *applier) resourceFor(u *unstructured.Unstructured) (dynamic.ResourceInterface, bool, error) {
	gvk := u.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, false, fmt.Errorf("the apiserver does not serve %s: %w", gvk, err)
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return a.dynamic.Resource(mapping.Resource), false, nil
	}
	if u.GetNamespace() == "" {
		u.SetNamespace(metav1.NamespaceDefault)
	}
	return a.dynamic.Resource(mapping.Resource).Namespace(u.GetNamespace()), true, nil
}

// dryRun validates objs[indexes] with the apiserver and names the first invalid document.
func (a *applier) dryRun(ctx context.Context, objs []*unstructured.Unstructured, indexes []int) error {
	for _, i := range indexes {
		u := objs[i]
		ri, _, err := a.resourceFor(u)
		if err == nil {
			_, err = ri.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("cancelled while validating document %d (%s): %w", i+1, describe(u), context.Cause(ctx))
			}
			return fmt.Errorf("document %d (%s) is invalid: %w", i+1, describe(u), err)
		}
	}
	return nil
}

// admissionCatchUp bounds how long a document may be forbidden only because an admission
// plugin's cache has not seen a foundation created a moment ago (a PriorityClass for the
// Priority plugin, say).
const admissionCatchUp = 5 * time.Second

// dryRunAfterFoundations validates documents that may depend on the foundations just created,
// retrying those the apiserver forbids until its admission caches have caught up.
func (a *applier) dryRunAfterFoundations(ctx context.Context, objs []*unstructured.Unstructured, indexes []int) error {
	deadline := time.Now().Add(admissionCatchUp)
	for {
		err := a.dryRun(ctx, objs, indexes)
		if err == nil || !apierrors.IsForbidden(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *applier) create(ctx context.Context, u *unstructured.Unstructured) error {
	ri, _, err := a.resourceFor(u)
	if err != nil {
		return err
	}
	_, err = ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
	return err
}

// crdReadyTimeout bounds the wait for the scenario's CRDs: on an idle apiserver it takes well
// under a second.
const crdReadyTimeout = time.Minute

// waitForCRDs returns once every CustomResourceDefinition among objs[indexes] is Established and
// its served versions are in discovery, and makes the mapper see them.
func (a *applier) waitForCRDs(ctx context.Context, objs []*unstructured.Unstructured, indexes []int) error {
	waited := false
	for _, i := range indexes {
		u := objs[i]
		if u.GroupVersionKind().GroupKind() != crdGroupKind {
			continue
		}
		waited = true
		var crd *apiextensionsv1.CustomResourceDefinition
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, crdReadyTimeout, true, func(ctx context.Context) (bool, error) {
			got, err := a.dynamic.Resource(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")).Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			crd = &apiextensionsv1.CustomResourceDefinition{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, crd); err != nil {
				return false, err
			}
			if !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
				return false, nil
			}
			for _, v := range crd.Spec.Versions {
				if !v.Served {
					continue
				}
				resources, err := a.discovery.ServerResourcesForGroupVersion(crd.Spec.Group + "/" + v.Name)
				if err != nil || !slices.ContainsFunc(resources.APIResources, func(r metav1.APIResource) bool { return r.Name == crd.Spec.Names.Plural }) {
					// Not found until the discovery controller has caught up.
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("document %d (%s): waiting for it to be Established: %w", i+1, describe(u), err)
		}
	}
	if waited {
		a.mapper.Reset()
	}
	return nil
}

// removeTimeout bounds undoing a failed apply. It runs even when the apply's context was
// cancelled: a caller that goes on using the apiserver must not find half a scenario.
const removeTimeout = time.Minute

// remove deletes objs[indexes], last created first, and waits until each is gone. Only
// foundations are ever removed; none has dependents a garbage collector would have to remove.
func (a *applier) remove(ctx context.Context, objs []*unstructured.Unstructured, indexes []int) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	var errs []error
	for _, i := range slices.Backward(indexes) {
		if err := a.delete(ctx, objs[i]); err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i+1, describe(objs[i]), err))
		}
	}
	return errors.Join(errs...)
}

func (a *applier) delete(ctx context.Context, u *unstructured.Unstructured) error {
	ri, _, err := a.resourceFor(u)
	if err != nil {
		return err
	}
	if err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if isNamespaceDoc(u) {
		// A deleted namespace waits for the namespace controller, which the sandbox does not
		// run, to empty it and drop its finalizer. Nothing was created in it: drop it here.
		if err := a.finalizeNamespace(ctx, u.GetName()); err != nil {
			return err
		}
	}
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// finalizeNamespace does what the namespace controller does once a namespace is empty: clear
// its spec finalizers, then delete it again, which now removes it.
func (a *applier) finalizeNamespace(ctx context.Context, name string) error {
	ns, err := a.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ns.Spec.Finalizers) > 0 {
		ns.Spec.Finalizers = nil
		if _, err := a.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("finalizing: %w", err)
		}
	}
	uid := ns.UID
	err = a.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// isNamespaceDoc reports whether a document is a core Namespace.
func isNamespaceDoc(u *unstructured.Unstructured) bool {
	return u.GroupVersionKind().GroupKind() == schema.GroupKind{Kind: "Namespace"}
}
