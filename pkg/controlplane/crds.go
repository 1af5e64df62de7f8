package controlplane

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/workbench-scheduler/workbench-scheduler/manifests"
)

// crdReadyTimeout bounds the wait for one CRD: on an idle apiserver it takes well under a second.
const crdReadyTimeout = 60 * time.Second

// installCRDs creates every CRD embedded in the manifests package and waits until each is
// Established and listed in discovery, so that typed clients, informers and RESTMappers
// work as soon as Start returns.
func installCRDs(ctx context.Context, cfg *rest.Config) error {
	crds, err := embeddedCRDs()
	if err != nil {
		return err
	}
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating an apiextensions client: %w", err)
	}
	for _, crd := range crds {
		if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating CustomResourceDefinition %s: %w", crd.Name, err)
		}
	}
	// Created first, waited for after: the apiserver establishes them concurrently.
	for _, crd := range crds {
		if err := waitForCRD(ctx, client, crd); err != nil {
			return err
		}
		klog.FromContext(ctx).V(2).Info("Installed CustomResourceDefinition", "crd", klog.KObj(crd))
	}
	return nil
}

// embeddedCRDs decodes manifests.CRDs, one CustomResourceDefinition per file.
func embeddedCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(manifests.CRDs, "crds/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("listing the embedded CRDs: %w", err)
	}
	crds := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(files))
	for _, file := range files {
		data, err := fs.ReadFile(manifests.CRDs, file)
		if err != nil {
			return nil, fmt.Errorf("reading embedded CRD %s: %w", file, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		// Strict: a field this apiextensions version does not know would be silently dropped.
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("decoding embedded CRD %s: %w", path.Base(file), err)
		}
		if gvk := crd.GroupVersionKind(); gvk != apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition") {
			return nil, fmt.Errorf("embedded CRD %s is a %s, not an apiextensions.k8s.io/v1 CustomResourceDefinition", path.Base(file), gvk)
		}
		crds = append(crds, crd)
	}
	return crds, nil
}

// waitForCRD returns once crd is Established and every served version lists its resource in
// discovery: a RESTMapper built before that would not know the kind.
func waitForCRD(ctx context.Context, client apiextensionsclient.Interface, crd *apiextensionsv1.CustomResourceDefinition) error {
	var last *apiextensionsv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, crdReadyTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = got
		if !apihelpers.IsCRDConditionTrue(got, apiextensionsv1.Established) {
			return false, nil
		}
		for _, v := range got.Spec.Versions {
			if !v.Served {
				continue
			}
			resources, err := client.Discovery().ServerResourcesForGroupVersion(got.Spec.Group + "/" + v.Name)
			if err != nil {
				// Not found until the discovery controller has caught up.
				return false, nil
			}
			found := false
			for _, r := range resources.APIResources {
				found = found || r.Name == got.Spec.Names.Plural
			}
			if !found {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CustomResourceDefinition %s to be Established: %w%s", crd.Name, err, conditionSummary(last))
	}
	return nil
}

// conditionSummary says why a CRD is not ready (NamesAccepted=False on a name conflict, say).
func conditionSummary(crd *apiextensionsv1.CustomResourceDefinition) string {
	if crd == nil {
		return ""
	}
	s := ""
	for _, c := range crd.Status.Conditions {
		s += fmt.Sprintf("; %s=%s", c.Type, c.Status)
		if c.Message != "" {
			s += ": " + c.Message
		}
	}
	return s
}
