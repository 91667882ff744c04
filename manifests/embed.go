package manifests

import (
	"embed"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// Files holds the manifests: the base (*.yaml: the kustomization and the
// objects it installs), example/ and cert-manager/.
//
//go:embed *.yaml example/*.yaml cert-manager/*.yaml
var Files embed.FS

// MutatingWebhookConfigurationFile is the file, in Files and in this folder,
// that registers the webhook; it holds that one object alone.
const MutatingWebhookConfigurationFile = "mutatingwebhookconfiguration.yaml"

// MutatingWebhookConfiguration decodes MutatingWebhookConfigurationFile
// (strictly: an unknown field is an error).
func MutatingWebhookConfiguration() (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	b, err := Files.ReadFile(MutatingWebhookConfigurationFile)
	if err != nil {
		return nil, err
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(b, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", MutatingWebhookConfigurationFile, err)
	}
	if cfg.APIVersion != admissionregistrationv1.SchemeGroupVersion.String() || cfg.Kind != "MutatingWebhookConfiguration" {
		return nil, fmt.Errorf("%s: holds %s %s, not a MutatingWebhookConfiguration", MutatingWebhookConfigurationFile, cfg.APIVersion, cfg.Kind)
	}
	return cfg, nil
}
