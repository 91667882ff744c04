package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tracecam/tracecam/e2e/kubeapi"
)

// kustomizationNames are the file names kustomize looks for in a folder.
var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// kustomization is the part of a kustomization file that says which files
// are not complete objects (patches, replacement and transformer
// configurations) and which namespace namespaced objects get.
type kustomization struct {
	Namespace             string   `json:"namespace"`
	PatchesStrategicMerge []string `json:"patchesStrategicMerge"`
	Configurations        []string `json:"configurations"`
	Patches               []struct {
		Path string `json:"path"`
	} `json:"patches"`
	PatchesJSON6902 []struct {
		Path string `json:"path"`
	} `json:"patchesJson6902"`
	Replacements []struct {
		Path string `json:"path"`
	} `json:"replacements"`
}

// manifestFile is one .yaml file under the manifests folder.
type manifestFile struct {
	rel       string // path relative to the manifests folder, the subtest name
	namespace string // from the folder's kustomization, for objects without one
	objs      []*unstructured.Unstructured
	err       error    // the file could not be read or decoded
	skipped   []string // objects of API groups the server does not serve
	nsErrs    []error  // creating its Namespaces for real failed
}

// TestManifestsServerSideDryRun checks every deployment manifest against a
// real kube-apiserver: each object must pass a server-side dry-run create
// with strict field validation (schema, defaulting, validation and
// admission, without storing anything). Namespaces are created for real
// first so that namespaced objects can be dry-run in them. Objects of API
// groups the bare API server does not serve (cert-manager.io: no CRDs) are
// skipped, and so are kustomize patch files, which are partial objects.
func TestManifestsServerSideDryRun(t *testing.T) {
	root := os.Getenv("TRACECAM_MANIFESTS_DIR")
	if root == "" {
		root = filepath.Join("..", "manifests") // go test runs in e2e/
	}
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	// Before starting the API server (whose first build takes minutes).
	files, err := readManifests(t, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no .yaml manifests under %s", root)
	}

	s := kubeapi.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	groups, err := s.Client.Discovery().ServerGroups()
	if err != nil {
		t.Fatalf("listing the served API groups: %v", err)
	}
	served := map[string]bool{}
	for _, g := range groups.Groups {
		served[g.Name] = true // the core group is "" here too
	}

	// Keep only objects the server can know; put namespaced ones without a
	// namespace where kustomize would.
	for _, f := range files {
		kept := f.objs[:0]
		for _, obj := range f.objs {
			if g := obj.GroupVersionKind().Group; !served[g] {
				f.skipped = append(f.skipped, fmt.Sprintf("skipping %s: API group %s is not served by a bare kube-apiserver (no CRDs)", kubeapi.Describe(obj), g))
				continue
			}
			if f.namespace != "" && obj.GetNamespace() == "" {
				obj.SetNamespace(f.namespace) // cluster-scoped objects lose it on the server
			}
			kept = append(kept, obj)
		}
		f.objs = kept
	}

	// Namespaces for real, from every file, each with the `default`
	// ServiceAccount (pods are rejected without it).
	needed := map[string]bool{}
	for _, f := range files {
		for _, obj := range f.objs {
			if isNamespace(obj) {
				if err := createNamespace(ctx, s, obj); err != nil {
					f.nsErrs = append(f.nsErrs, err)
				}
			} else if ns := obj.GetNamespace(); ns != "" {
				needed[ns] = true
			}
		}
	}
	// A namespace set by a kustomization but declared nowhere: kustomize
	// users create it themselves.
	for _, f := range files {
		if ns := f.namespace; ns != "" && needed[ns] {
			if _, err := s.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				t.Logf("namespace %s (from %s's kustomization) is in no manifest: creating it", ns, filepath.Dir(f.rel))
				if err := s.EnsureNamespace(ctx, ns); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	for _, f := range files {
		t.Run(f.rel, func(t *testing.T) {
			if f.err != nil {
				t.Fatal(f.err)
			}
			for _, msg := range f.skipped {
				t.Log(msg)
			}
			for _, err := range f.nsErrs {
				t.Error(err)
			}
			for _, obj := range f.objs {
				if isNamespace(obj) {
					t.Logf("created for real above: %s", kubeapi.Describe(obj))
					continue
				}
				ri, err := s.ResourceFor(obj)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				_, err = ri.Create(ctx, obj, metav1.CreateOptions{
					DryRun:          []string{metav1.DryRunAll},
					FieldValidation: metav1.FieldValidationStrict,
				})
				if err != nil {
					t.Errorf("server-side dry run of %s: %v", kubeapi.Describe(obj), err)
					continue
				}
				t.Logf("ok: %s", kubeapi.Describe(obj))
			}
		})
	}
}

// readManifests walks root for .yaml files, leaving out kustomization files
// and the patch files they name, and decodes the rest.
func readManifests(t *testing.T, root string) ([]*manifestFile, error) {
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("the deployment manifests are expected in %s (TRACECAM_MANIFESTS_DIR overrides): %w", root, err)
	}
	notObjects := map[string]string{} // absolute path -> why it is left out
	namespaces := map[string]string{} // folder -> kustomization namespace
	var paths []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			k, kpath, err := readKustomization(path)
			if err != nil {
				return fmt.Errorf("reading the kustomization in %s: %w", path, err)
			}
			if k == nil {
				return nil
			}
			namespaces[path] = k.Namespace
			refs := map[string]string{}
			for _, p := range k.PatchesStrategicMerge {
				refs[p] = "a strategic-merge patch"
			}
			for _, p := range k.Patches {
				refs[p.Path] = "a patch"
			}
			for _, p := range k.PatchesJSON6902 {
				refs[p.Path] = "a JSON 6902 patch"
			}
			for _, p := range k.Replacements {
				refs[p.Path] = "a replacement"
			}
			for _, p := range k.Configurations {
				refs[p] = "a transformer configuration"
			}
			for ref, what := range refs {
				// Entries can be inline patches rather than file names.
				if ref == "" || strings.Contains(ref, "\n") {
					continue
				}
				notObjects[filepath.Join(path, ref)] = what + " listed in " + kpath
			}
			return nil
		}
		if filepath.Ext(path) == ".yaml" && !isKustomization(d.Name()) {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", root, err)
	}
	sort.Strings(paths)

	var files []*manifestFile
	for _, path := range paths {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return nil, err
		}
		if why, ok := notObjects[path]; ok {
			t.Logf("%s: skipping, %s (a partial object)", rel, why)
			continue
		}
		f := &manifestFile{rel: rel, namespace: namespaces[filepath.Dir(path)]}
		if b, err := os.ReadFile(path); err != nil {
			f.err = fmt.Errorf("reading %s: %w", rel, err)
		} else if f.objs, err = kubeapi.Decode(b); err != nil {
			f.err = fmt.Errorf("decoding %s: %w", rel, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// readKustomization parses dir's kustomization file; nil when there is none.
func readKustomization(dir string) (*kustomization, string, error) {
	for _, name := range kustomizationNames {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		k := &kustomization{}
		if err := yaml.Unmarshal(b, k); err != nil {
			return nil, "", fmt.Errorf("parsing %s: %w", path, err)
		}
		return k, path, nil
	}
	return nil, "", nil
}

func isKustomization(name string) bool {
	for _, n := range kustomizationNames {
		if name == n {
			return true
		}
	}
	return false
}

func isNamespace(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Namespace"
}

// createNamespace creates a manifest's Namespace as written (labels such as
// pod-security ones matter to later objects), then the `default`
// ServiceAccount in it.
func createNamespace(ctx context.Context, s *kubeapi.Server, obj *unstructured.Unstructured) error {
	ri, err := s.ResourceFor(obj)
	if err != nil {
		return err
	}
	_, err = ri.Create(ctx, obj, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", kubeapi.Describe(obj), err)
	}
	return s.EnsureNamespace(ctx, obj.GetName())
}
