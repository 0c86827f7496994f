package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

// testPullSecrets proves that a private source is pulled with the
// credentials the kubelet would use for the Pod: the configuration has
// none for the source, so only the Pod's imagePullSecrets or its
// ServiceAccount's can make the copy, and swap: wait shows the outcome in
// the stored Pod.
func (s *suite) testPullSecrets(t *testing.T) {
	user, password := "puller-"+testenv.RandomSecret(t)[:8], testenv.RandomSecret(t)
	private := testenv.StartDockerRegistry(t, testenv.RegistryOptions{Htpasswd: testenv.WriteHtpasswd(t, user, password)})
	creds := &authn.Basic{Username: user, Password: password}
	sw := s.startSwapper(t, swapperOptions{id: "pull", budget: 8 * time.Second, config: fmt.Sprintf(`sourceRegistries: [%q, %q]
targetRegistry: %q
mirroring:
  swap: wait
  waitBudget: 6s
registries:
  %q: {insecure: true}
  %q: {insecure: true}
  %q: {insecure: true}
`, s.src.Host, private.Host, s.dst.Host, s.src.Host, private.Host, s.dst.Host)})
	// secrets must never show: neither the password nor the base64
	// "user:password" a config.json carries.
	secrets := []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	source := func(path string) string { return private.Host + "/" + path }
	mirror := func(path string) string {
		return s.dst.Host + "/" + strings.ReplaceAll(private.Host, ":", "_") + "/" + path
	}

	// The Pods' Secrets and ServiceAccounts are cached for a minute, a
	// missing ServiceAccount too: the ServiceAccount scenario has its own
	// namespace, whose ServiceAccount exists before any Pod.
	const podNS, saNS = "pull-secrets", "pull-secrets-sa"
	s.namespace(t, podNS, map[string]string{serverLabel: sw.id})
	s.namespace(t, saNS, map[string]string{serverLabel: sw.id})
	s.pullSecret(t, podNS, "private-registry", private.Host, user, password)
	s.pullSecret(t, saNS, "private-registry", private.Host, user, password)
	s.defaultServiceAccountPulls(t, saNS, "private-registry")

	tests := []struct {
		name, ns, pod, path string
		pullSecrets         []corev1.LocalObjectReference
		swapped             bool
	}{
		{"a Pod's imagePullSecrets pull the private source into the mirror", podNS, "with-secret", "e2e/private/app:1.0", []corev1.LocalObjectReference{{Name: "private-registry"}}, true},
		{"a Pod without pull secrets keeps the private original with a warning", podNS, "without-secret", "e2e/private/other:1.0", nil, false},
		{"the default ServiceAccount's imagePullSecrets pull the private source", saNS, "via-service-account", "e2e/private/sa:1.0", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := source(tc.path), mirror(tc.path)
			srcDigest := seedPrivateImage(t, src, creds)
			if _, err := manifestDigest(t, dst); err == nil {
				t.Fatalf("the mirror holds %s before the test copies it", dst)
			}
			pod := newPod(tc.pod, nil, src)
			pod.Spec.ImagePullSecrets = tc.pullSecrets
			c := s.mustCreatePod(t, tc.ns, pod)
			stored := s.storedPod(t, tc.ns, tc.pod)
			for _, w := range c.warnings {
				for _, secret := range secrets {
					if strings.Contains(w, secret) {
						t.Errorf("the warning %q shows the registry password", w)
					}
				}
			}
			if !tc.swapped {
				if got := images(stored); !maps.Equal(got, map[string]string{"app": src}) {
					t.Errorf("without pull secrets the stored images are %v, want the original %s (warnings %q)", got, src, c.warnings)
				}
				if got := recordedOriginals(t, stored); got != nil {
					t.Errorf("the Pod was not swapped but records originals %v", got)
				}
				w := expectWarning(t, c.warnings, "container app", "kept "+src)
				t.Logf("kubectl would print: Warning: %s", w)
				if d, err := manifestDigest(t, dst); err == nil {
					t.Errorf("the mirror holds %s (%s), copied without credentials", dst, d)
				}
				return
			}
			if got := images(stored); !maps.Equal(got, map[string]string{"app": dst}) {
				t.Fatalf("the stored images are %v, want the mirror %s (warnings %q)", got, dst, c.warnings)
			}
			if got, want := recordedOriginals(t, stored), map[string]string{"containers/app": src}; !maps.Equal(got, want) {
				t.Errorf("annotation %s records %v, want %v", originalImagesAnnotation, got, want)
			}
			expectWarning(t, c.warnings, "container app", src+" -> "+dst)
			// The admission waited for the copy, so the mirror has it now.
			got, err := manifestDigest(t, dst)
			if err != nil {
				t.Fatalf("the Pod was swapped to %s, which the mirror does not have: %v", dst, err)
			}
			if got != srcDigest {
				t.Errorf("the mirror holds %s at %s, the source %s: a copy must keep the digest", dst, got, srcDigest)
			}
		})
	}

	// The refused copy is logged, so the logs checked below are the ones
	// that had a chance to show the credentials. The output reaches the
	// test through a pipe, possibly a moment after the answer.
	var logs string
	refused := source("e2e/private/other:1.0")
	err := testenv.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		logs = sw.proc.Logs()
		if !strings.Contains(logs, "src="+refused) || !strings.Contains(logs, "401 Unauthorized") {
			return fmt.Errorf("no refused copy of %s logged", refused)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the logs of image-swapper %s: %v:\n%s", sw.id, err, logs)
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs of image-swapper %s show the registry password:\n%s", sw.id, logs)
		}
	}
}

// seedPrivateImage writes a small random image to r with auth and returns
// its digest.
func seedPrivateImage(t *testing.T, r string, auth authn.Authenticator) v1.Hash {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, r), img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("seeding %s: %v", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pullSecret creates a kubernetes.io/dockerconfigjson Secret in ns with
// credentials for host, as `kubectl create secret docker-registry` does.
func (s *suite) pullSecret(t *testing.T, ns, name, host, user, password string) {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
		"username": user,
		"password": password,
		"auth":     base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}
	if _, err := s.kube.CoreV1().Secrets(ns).Create(context.Background(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pull secret %s/%s: %v", ns, name, err)
	}
}

// defaultServiceAccountPulls gives the ServiceAccount "default" of ns the
// pull secret named secret. Without a controller manager nothing creates
// that ServiceAccount, so it is created when missing.
func (s *suite) defaultServiceAccountPulls(t *testing.T, ns, secret string) {
	t.Helper()
	ctx := context.Background()
	sas := s.kube.CoreV1().ServiceAccounts(ns)
	refs := []corev1.LocalObjectReference{{Name: secret}}
	sa, err := sas.Get(ctx, "default", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}, ImagePullSecrets: refs}
		_, err = sas.Create(ctx, sa, metav1.CreateOptions{})
	case err == nil:
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, refs...)
		_, err = sas.Update(ctx, sa, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("giving ServiceAccount %s/default the pull secret %s: %v", ns, secret, err)
	}
}
