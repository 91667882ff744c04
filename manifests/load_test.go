package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// This file loads the manifests for the tests: every .yaml file under this
// folder, split into documents, each decoded strictly with the Kubernetes
// API types (an unknown or duplicated field fails), and every kustomization.

// strict decodes the API types client-go knows, failing on unknown fields.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// object is one YAML document of a manifest file.
type object struct {
	file  string // slash-separated, relative to this folder
	index int    // of the document in its file
	// typed is the decoded API object; nil for kinds client-go does not
	// know (cert-manager.io, other CRDs), which are checked as u only.
	typed runtime.Object
	u     *unstructured.Unstructured
}

func (o *object) gvk() schema.GroupVersionKind { return o.u.GroupVersionKind() }

func (o *object) String() string {
	s := fmt.Sprintf("%s: %s %s", o.file, o.u.GetKind(), o.u.GetName())
	if ns := o.u.GetNamespace(); ns != "" {
		s = fmt.Sprintf("%s: %s %s/%s", o.file, o.u.GetKind(), ns, o.u.GetName())
	}
	return s
}

// kustomization is what the tests read of a kustomization.yaml; decoding
// is strict, so a field this does not know fails the tests (extend it).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	CommonLabels map[string]string `json:"commonLabels,omitempty"`
	Images       []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
	Patches []struct {
		Path   string `json:"path,omitempty"`
		Patch  string `json:"patch,omitempty"`
		Target *struct {
			Group     string `json:"group,omitempty"`
			Version   string `json:"version,omitempty"`
			Kind      string `json:"kind,omitempty"`
			Name      string `json:"name,omitempty"`
			Namespace string `json:"namespace,omitempty"`
		} `json:"target,omitempty"`
	} `json:"patches,omitempty"`

	dir string // slash-separated, relative to this folder ("." for the base)
}

// set is the loaded manifests.
type set struct {
	objects        []*object
	files          map[string][]*object // file -> its documents
	kustomizations map[string]*kustomization
}

// isKustomization tells kustomization files, which are not API objects.
func isKustomization(name string) bool {
	return name == "kustomization.yaml" || name == "kustomization.yml" || name == "Kustomization"
}

// load reads every manifest under root. Errors are collected, not fatal at
// the first, so one run names every broken file.
func load(root string) (*set, []error) {
	s := &set{files: map[string][]*object{}, kustomizations: map[string]*kustomization{}}
	var errs []error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(p)
		if ext != ".yaml" && ext != ".yml" && !isKustomization(d.Name()) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if isKustomization(d.Name()) {
			k := &kustomization{dir: path.Dir(rel)}
			if err := yaml.UnmarshalStrict(b, k); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rel, err))
				return nil
			}
			s.kustomizations[k.dir] = k
			return nil
		}
		objs, ferrs := decodeFile(rel, b)
		errs = append(errs, ferrs...)
		s.files[rel] = objs
		s.objects = append(s.objects, objs...)
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return s, errs
}

// decodeFile splits a file into YAML documents and decodes each.
func decodeFile(rel string, b []byte) ([]*object, []error) {
	var objs []*object
	var errs []error
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 0; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", rel, i, err))
			break
		}
		j, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", rel, i, err))
			continue
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // an empty document (comments only)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", rel, i, err))
			continue
		}
		o := &object{file: rel, index: i, u: u}
		typed, _, err := strict.Decode(raw, nil, nil)
		switch {
		case runtime.IsNotRegisteredError(err):
			// A kind client-go does not know (a CRD): checked as unstructured.
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: document %d (%s %s): %w", rel, i, u.GetKind(), u.GetName(), err))
			continue
		default:
			o.typed = typed
		}
		objs = append(objs, o)
	}
	return objs, errs
}

// loadAll loads this folder's manifests, failing the test on any error.
func loadAll(t *testing.T) *set {
	t.Helper()
	s, errs := load(".")
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	if len(s.objects) == 0 {
		t.Fatal("no manifests found")
	}
	return s
}

// find returns the one object of the kind and name in the files under dir
// ("." for the base: files directly in this folder), and fails without it.
func find[T runtime.Object](t *testing.T, s *set, dir, name string) T {
	t.Helper()
	var zero T
	var found []T
	for _, o := range s.objects {
		if path.Dir(o.file) != dir || o.u.GetName() != name {
			continue
		}
		if v, ok := o.typed.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %T named %q in %s/, found %d", zero, name, dir, len(found))
	}
	return found[0]
}

// all returns the objects of type T in the files under dir ("" for all).
func all[T runtime.Object](s *set, dir string) []T {
	var out []T
	for _, o := range s.objects {
		if dir != "" && path.Dir(o.file) != dir {
			continue
		}
		if v, ok := o.typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// clusterScoped lists the kinds, by group and kind, without a namespace:
// every built-in cluster-scoped kind a manifest may plausibly hold, and the
// cluster-scoped ones of the CRDs tracecam's manifests use. Any other kind
// counts as namespaced.
var clusterScoped = map[schema.GroupKind]bool{
	{Group: "", Kind: "Namespace"}:                                                    true,
	{Group: "", Kind: "Node"}:                                                         true,
	{Group: "", Kind: "PersistentVolume"}:                                             true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                               true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                   true,
	{Group: "storage.k8s.io", Kind: "CSIDriver"}:                                      true,
	{Group: "node.k8s.io", Kind: "RuntimeClass"}:                                      true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                                true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}:                       true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}:       true,
	{Group: "cert-manager.io", Kind: "ClusterIssuer"}:                                 true,
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
