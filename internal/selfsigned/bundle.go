package selfsigned

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// webhookConfig is what Sync needs of a Mutating- or
// ValidatingWebhookConfiguration: its version and each webhook's bundle.
type webhookConfig struct {
	kind            string
	name            string
	resourceVersion string
	// webhooks are the configuration's webhooks, in order.
	webhooks []webhookBundle
}

// webhookBundle is a webhook's name and clientConfig.caBundle.
type webhookBundle struct {
	name     string
	caBundle []byte
}

// readConfigs reads both webhook configurations named name; one that does
// not exist is left out, because the chart may create it after the
// server starts and the watch then sees it.
func readConfigs(ctx context.Context, client kubernetes.Interface, name string) ([]*webhookConfig, error) {
	var out []*webhookConfig
	m, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
	default:
		c := &webhookConfig{kind: "MutatingWebhookConfiguration", name: name, resourceVersion: m.ResourceVersion}
		for _, w := range m.Webhooks {
			c.webhooks = append(c.webhooks, webhookBundle{w.Name, w.ClientConfig.CABundle})
		}
		out = append(out, c)
	}
	v, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", name, err)
	default:
		c := &webhookConfig{kind: "ValidatingWebhookConfiguration", name: name, resourceVersion: v.ResourceVersion}
		for _, w := range v.Webhooks {
			c.webhooks = append(c.webhooks, webhookBundle{w.Name, w.ClientConfig.CABundle})
		}
		out = append(out, c)
	}
	return out, nil
}

// carries reports whether every webhook of every configuration trusts ca.
// With no configuration it is true: nothing calls the server through one.
func carries(configs []*webhookConfig, ca *x509.Certificate) bool {
	for _, c := range configs {
		for _, w := range c.webhooks {
			if !bundleHas(w.caBundle, ca) {
				return false
			}
		}
	}
	return true
}

// caBundlePatch is a strategic merge patch: webhooks merge by name, so it
// touches only the caBundle of the webhooks it lists. The resourceVersion
// makes it conditional: a patch computed from an older read fails with a
// conflict instead of undoing a newer bundle.
type caBundlePatch struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Webhooks []caBundlePatchWebhook `json:"webhooks"`
}

type caBundlePatchWebhook struct {
	Name         string `json:"name"`
	ClientConfig struct {
		CABundle []byte `json:"caBundle"`
	} `json:"clientConfig"`
}

// publish sets the caBundle of every webhook of c that differs from
// bundle. It reports whether it patched; a conflict is returned as is
// (apierrors.IsConflict) for the caller to read again.
func publish(ctx context.Context, client kubernetes.Interface, c *webhookConfig, bundle []byte) (bool, error) {
	var p caBundlePatch
	p.Metadata.ResourceVersion = c.resourceVersion
	for _, w := range c.webhooks {
		if bytes.Equal(w.caBundle, bundle) {
			continue
		}
		pw := caBundlePatchWebhook{Name: w.name}
		pw.ClientConfig.CABundle = bundle
		p.Webhooks = append(p.Webhooks, pw)
	}
	if len(p.Webhooks) == 0 {
		return false, nil
	}
	body, err := json.Marshal(p)
	if err != nil {
		return false, fmt.Errorf("encoding the caBundle patch of %s %s: %w", c.kind, c.name, err)
	}
	api := client.AdmissionregistrationV1()
	opts := metav1.PatchOptions{FieldManager: fieldManager}
	switch c.kind {
	case "MutatingWebhookConfiguration":
		_, err = api.MutatingWebhookConfigurations().Patch(ctx, c.name, types.StrategicMergePatchType, body, opts)
	default:
		_, err = api.ValidatingWebhookConfigurations().Patch(ctx, c.name, types.StrategicMergePatchType, body, opts)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, err
		}
		return false, fmt.Errorf("patching the caBundle of %s %s: %w", c.kind, c.name, err)
	}
	return true, nil
}
