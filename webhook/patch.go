package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Patch returns the RFC 6902 JSON patch that turns original into mutated,
// as a JSON array of operations ("[]" when they are equal).
//
// Both pods are encoded with the same Go types before diffing (as opposed
// to diffing the request's raw bytes against the re-encoded pod): a field
// that this build's k8s.io/api does not know, sent by a newer API server,
// is then absent from both sides and the patch leaves it alone instead of
// removing it.
func Patch(original, mutated *corev1.Pod) ([]byte, error) {
	if original == nil || mutated == nil {
		return nil, errors.New("patch: nil pod")
	}
	a, err := json.Marshal(original)
	if err != nil {
		return nil, fmt.Errorf("patch: encoding the original pod: %w", err)
	}
	b, err := json.Marshal(mutated)
	if err != nil {
		return nil, fmt.Errorf("patch: encoding the mutated pod: %w", err)
	}
	ops, err := jsonpatch.CreatePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	if ops == nil {
		ops = []jsonpatch.Operation{}
	}
	p, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("patch: encoding: %w", err)
	}
	return p, nil
}
