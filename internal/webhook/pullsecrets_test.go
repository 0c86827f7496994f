package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrname "github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/registrytest"
)

// serviceMirror adapts a mirror.Service to engine.Mirror, as the serve
// command does.
type serviceMirror struct {
	svc *mirror.Service
	reg *registry.Client
}

func (m serviceMirror) Present(ctx context.Context, dst reference.Reference) (string, bool, error) {
	d, ok, err := m.reg.Exists(ctx, dst)
	return d.Digest, ok, err
}

func (m serviceMirror) Enqueue(src, dst reference.Reference, pull authn.Keychain) {
	m.svc.Enqueue(src, dst, mirror.WithPullKeychain(pull))
}

func (m serviceMirror) Ensure(ctx context.Context, src, dst reference.Reference, pull authn.Keychain) (string, error) {
	r, err := m.svc.Ensure(ctx, src, dst, mirror.WithPullKeychain(pull))
	return r.Digest, err
}

// basicAuthUsers makes reg demand basic credentials user:pass and records
// the users of the requests it let through.
func basicAuthUsers(reg *registrytest.Registry, user, pass string) func() []string {
	var (
		mu    sync.Mutex
		users []string
	)
	reg.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		if ok && u == user && p == pass {
			mu.Lock()
			users = append(users, u)
			mu.Unlock()
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Compact(slices.Clone(users))
	}
}

func dockerConfigJSON(host, user, pass string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth)
}

func TestAPodsImagePullSecretsPullTheSourceItsCopyNeeds(t *testing.T) {
	tests := []struct {
		name       string
		pod        corev1.PodSpec
		objects    func(host string) []runtime.Object
		wantSwap   bool
		wantPulled []string
	}{
		{
			"the Pod's own dockerconfigjson Secret is used",
			corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "missing"}, {Name: "pull"}}},
			func(host string) []runtime.Object {
				return []runtime.Object{&corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pull"},
					Type:       corev1.SecretTypeDockerConfigJson,
					Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfigJSON(host, "alice", "s3cret")},
				}}
			},
			true, []string{"alice"},
		},
		{
			"its ServiceAccount's legacy dockercfg Secret is used",
			corev1.PodSpec{ServiceAccountName: "builder"},
			func(host string) []runtime.Object {
				auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
				return []runtime.Object{
					&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "builder"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "legacy"}}},
					&corev1.Secret{
						ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "legacy"},
						Type:       corev1.SecretTypeDockercfg,
						Data:       map[string][]byte{corev1.DockerConfigKey: fmt.Appendf(nil, `{"http://%s":{"auth":%q}}`, host, auth)},
					},
				}
			},
			true, []string{"alice"},
		},
		{
			"a Pod without pull secrets is kept, its copy refused",
			corev1.PodSpec{},
			func(string) []runtime.Object { return nil },
			false, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := registrytest.New(t), registrytest.New(t)
			src.PushIndex(t, "team/app:1.0", 1, "linux/amd64")
			pulled := basicAuthUsers(src, "alice", "s3cret")

			cfgPath := filepath.Join(t.TempDir(), "config.yaml")
			cfgText := fmt.Sprintf("sourceRegistries: [%q]\ntargetRegistry: %q\nmirroring: {swap: wait}\nregistries:\n  %q: {insecure: true}\n  %q: {insecure: true}\n", src.Host, dst.Host, src.Host, dst.Host)
			if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			reg, err := registry.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			svc := mirror.New(reg, mirror.Options{})
			t.Cleanup(svc.Close)
			client := fake.NewClientset(tt.objects(src.Host)...)
			s, err := New(Options{
				ConfigPath:  cfgPath,
				Mirror:      serviceMirror{svc: svc, reg: reg},
				PullSecrets: NewPullSecrets(client, testLogger(t), 0),
				Logger:      testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}

			image := src.Host + "/team/app:1.0"
			spec := tt.pod
			spec.Containers = []corev1.Container{{Name: "app", Image: image}}
			resp := review(t, s.Handler(), "/mutate", podCreateReview(t, "team", spec))
			swapped := resp.Patch != nil && strings.Contains(string(resp.Patch), dst.Host+"/"+strings.ReplaceAll(src.Host, ":", "_")+"/team/app:1.0")
			if swapped != tt.wantSwap {
				t.Errorf("swapped = %v, want %v (patch %s, warnings %q)", swapped, tt.wantSwap, resp.Patch, resp.Warnings)
			}
			if got := pulled(); !slices.Equal(got, tt.wantPulled) {
				t.Errorf("the source served %q, want %q", got, tt.wantPulled)
			}
			if tt.wantSwap && dst.Digest(t, strings.ReplaceAll(src.Host, ":", "_")+"/team/app:1.0") == "" {
				t.Error("the target does not have the image")
			}
		})
	}
}

// podCreateReview is a Pod CREATE AdmissionReview.
func podCreateReview(t *testing.T, namespace string, spec corev1.PodSpec) []byte {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "app"},
		Spec:       spec,
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-1"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Operation: admissionv1.Create,
			Namespace: namespace,
			Name:      "app",
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestPullSecretsReadEachObjectOncePerTTLAndOnlyWhenAsked(t *testing.T) {
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfigJSON("https://index.docker.io/v1/", "alice", "s3cret")},
	})
	ps := NewPullSecrets(client, testLogger(t), 0)
	spec := &corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}}
	gets := func() int { return len(client.Actions()) }

	kcs := make([]authn.Keychain, 3)
	for i := range kcs {
		kcs[i] = ps.Keychain("team", spec)
	}
	if n := gets(); n != 0 {
		t.Fatalf("%d API requests before any keychain was asked, want 0", n)
	}
	for _, kc := range kcs {
		repo, err := ggcrname.NewRepository("index.docker.io/library/nginx")
		if err != nil {
			t.Fatal(err)
		}
		auth, err := authn.Resolve(t.Context(), kc, repo)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := authn.Authorization(t.Context(), auth)
		if err != nil || ac.Username != "alice" || ac.Password != "s3cret" {
			t.Fatalf("Docker Hub credentials %+v (%v), want alice's", ac, err)
		}
		other, _ := ggcrname.NewRepository("ghcr.io/team/app")
		if auth, _ := authn.Resolve(t.Context(), kc, other); auth != authn.Anonymous {
			t.Errorf("ghcr.io got %v, want anonymous: the Secret has nothing for it", auth)
		}
	}
	// One ServiceAccount GET (default, missing) and one Secret GET.
	if n := gets(); n != 2 {
		t.Errorf("%d API requests for three Pods, want 2: %v", n, client.Actions())
	}
}

func TestPullSecretEntriesApplyToTheirRegistryAndPath(t *testing.T) {
	auth := func(up string) string { return base64.StdEncoding.EncodeToString([]byte(up)) }
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths":{
			"https://index.docker.io/v1/": {"auth": %q},
			"registry.example.com/team": {"username": "teamuser", "password": "p2"},
			"registry.example.com": {"auth": %q},
			"Other.Example.com": {"auth": %q},
			"*.example.com": {"username": "wilduser", "password": "p5"}
		}}`, auth("hubuser:p1"), auth("anyuser:p3"), auth("caseuser:p4"))},
	}
	creds, err := secretCredentials(secret)
	if err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(creds)
	tests := []struct {
		name, image string
		want        string
	}{
		{"Docker Hub's v1 URL key applies to docker.io", "docker.io/library/nginx", "hubuser"},
		{"Docker Hub's key applies to a Hub image written without registry", "library/nginx", "hubuser"},
		{"a key with a path applies below it first", "registry.example.com/team/app", "teamuser"},
		{"a path key is a string prefix, as for the kubelet", "registry.example.com/teamx/app", "teamuser"},
		{"a host key applies to the rest of the registry", "registry.example.com/other/app", "anyuser"},
		{"a wildcard covers one host part", "cache.example.com/x", "wilduser"},
		{"a wildcard does not cover two host parts", "a.b.example.com/x", ""},
		{"host keys are case-sensitive, as for the kubelet", "other.example.com/x", "wilduser"},
		{"another registry gets nothing", "ghcr.io/team/app", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if auths := kr.lookup(tt.image); len(auths) > 0 {
				got = auths[0].Username
			}
			if got != tt.want {
				t.Errorf("lookup(%q) user %q, want %q", tt.image, got, tt.want)
			}
		})
	}
}

// The kubelet's own cases (k8s.io/kubernetes pkg/credentialprovider,
// keyring_test.go: TestURLsMatch, TestDockerKeyringForGlob,
// TestKeyringMiss, the Docker Hub tests and TestIsDefaultRegistryMatch).
func TestPullSecretKeysMatchAsTheKubeletMatchesThem(t *testing.T) {
	t.Run("URLsMatch", func(t *testing.T) {
		for _, tt := range []struct {
			glob, target string
			want         bool
		}{
			// match when there is no path component
			{"*.kubernetes.io", "prefix.kubernetes.io", true},
			{"prefix.*.io", "prefix.kubernetes.io", true},
			{"prefix.kubernetes.*", "prefix.kubernetes.io", true},
			{"*-good.kubernetes.io", "prefix-good.kubernetes.io", true},
			// match with path components
			{"*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true},
			{"prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true},
			// match with path components and ports
			{"*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true},
			{"prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true},
			// no match when number of parts mismatch
			{"*.kubernetes.io", "kubernetes.io", false},
			{"*.*.kubernetes.io", "prefix.kubernetes.io", false},
			{"*.*.kubernetes.io", "kubernetes.io", false},
			// no match when some parts mismatch
			{"kubernetes.io", "kubernetes.com", false},
			{"k*.io", "quay.io", false},
			// no match when ports mismatch
			{"*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false},
			{"prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false},
		} {
			if got := urlsMatchStr(tt.glob, tt.target); got != tt.want {
				t.Errorf("urlsMatchStr(%q, %q) = %v, want %v", tt.glob, tt.target, got, tt.want)
			}
		}
	})

	// keyringFor is a Pod's keyring with one Secret of one entry.
	keyringFor := func(t *testing.T, key string) *keyring {
		t.Helper()
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pull"},
			Type:       corev1.SecretTypeDockercfg,
			Data:       map[string][]byte{corev1.DockerConfigKey: fmt.Appendf(nil, `{%q: {"email": "foo@bar.baz", "auth": %q}}`, key, base64.StdEncoding.EncodeToString([]byte("foo:bar")))},
		}
		creds, err := secretCredentials(s)
		if err != nil {
			t.Fatal(err)
		}
		return newKeyring(creds)
	}
	t.Run("DockerKeyringForGlob", func(t *testing.T) {
		for _, tt := range []struct{ glob, target string }{
			{"https://hello.kubernetes.io", "hello.kubernetes.io"},
			{"https://*.docker.io", "prefix.docker.io"},
			{"https://prefix.*.io", "prefix.docker.io"},
			{"https://prefix.docker.*", "prefix.docker.io"},
			{"https://*.docker.io/path", "prefix.docker.io/path"},
			{"https://prefix.*.io/path", "prefix.docker.io/path/subpath"},
			{"https://prefix.docker.*/path", "prefix.docker.io/path"},
			{"https://*.docker.io:8888", "prefix.docker.io:8888"},
			{"https://prefix.*.io:8888", "prefix.docker.io:8888"},
			{"https://prefix.docker.*:8888", "prefix.docker.io:8888"},
			{"https://*.docker.io/path:1111", "prefix.docker.io/path:1111"},
			{"https://*.docker.io/v1/", "prefix.docker.io/path:1111"},
			{"https://*.docker.io/v2/", "prefix.docker.io/path:1111"},
			{"https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111"},
			{"prefix.docker.io:1111", "prefix.docker.io:1111/path"},
			{"*.docker.io:1111", "prefix.docker.io:1111/path"},
		} {
			auths := keyringFor(t, tt.glob).lookup(tt.target + "/foo/bar")
			if len(auths) == 0 || auths[0].Username != "foo" || auths[0].Password != "bar" {
				t.Errorf("key %q: lookup(%q) = %d credentials, want foo's", tt.glob, tt.target+"/foo/bar", len(auths))
			}
		}
	})
	t.Run("KeyringMiss", func(t *testing.T) {
		for _, tt := range []struct{ glob, lookup string }{
			{"https://hello.kubernetes.io", "world.mesos.org/foo/bar"},
			{"https://*.docker.com", "prefix.docker.io"},
			{"https://suffix.*.io", "prefix.docker.io"},
			{"https://prefix.docker.c*", "prefix.docker.io"},
			{"https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111"},
			{"suffix.*.io", "prefix.docker.io"},
		} {
			if auths := keyringFor(t, tt.glob).lookup(tt.lookup + "/foo/bar"); len(auths) != 0 {
				t.Errorf("key %q: lookup(%q) found a credential, want none", tt.glob, tt.lookup+"/foo/bar")
			}
		}
	})
	t.Run("DockerHub", func(t *testing.T) {
		hub := keyringFor(t, "https://index.docker.io/v1/")
		for _, tt := range []struct {
			image string
			want  bool
		}{
			{"world.mesos.org/foo/bar", false},                   // TestKeyringMissWithDockerHubCredentials
			{"google/docker-registry", true},                     // TestKeyringHitWithUnqualifiedDockerHub
			{"jenkins", true},                                    // TestKeyringHitWithUnqualifiedLibraryDockerHub
			{"index.docker.io/v1//google/docker-registry", true}, // TestKeyringHitWithQualifiedDockerHub
			{"docker.io/library/nginx", true},                    // what kubeletImage gives for Docker Hub
		} {
			auths := hub.lookup(tt.image)
			if got := len(auths) == 1 && auths[0].Username == "foo"; got != tt.want {
				t.Errorf("lookup(%q) = %d credentials, want a hit %v", tt.image, len(auths), tt.want)
			}
		}
	})
	t.Run("IsDefaultRegistryMatch", func(t *testing.T) {
		for image, want := range map[string]bool{
			"foo/bar":                 true,
			"docker.io/foo/bar":       true,
			"index.docker.io/foo/bar": true,
			"foo":                     true,
			"":                        false,
			"registry.tld/foo/bar":    false,
			"registry:5000/foo/bar":   false,
			"myhostdocker.io/foo/bar": false,
		} {
			if got := isDefaultRegistryMatch(image); got != want {
				t.Errorf("isDefaultRegistryMatch(%q) = %v, want %v", image, got, want)
			}
		}
	})
}

// Across a Pod's Secrets, the most specific key wins whichever Secret
// holds it; for one key, the first Secret's credential comes first.
func TestAPodsKeychainPicksTheMostSpecificEntryOfAllItsSecrets(t *testing.T) {
	secret := func(name, key, user string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfigJSON(key, user, "pw-"+user)},
		}
	}
	client := fake.NewClientset(
		secret("broad", "quay.io", "broad"),
		secret("narrow", "quay.io/coreos", "narrow"),
		secret("wild", "*.example.com", "wild"),
		secret("exact", "registry.example.com", "exact"),
		secret("again", "quay.io", "second"),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "default"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "again"}}},
	)
	spec := &corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "broad"}, {Name: "wild"}, {Name: "narrow"}, {Name: "exact"}}}
	kc := NewPullSecrets(client, testLogger(t), 0).Keychain("team", spec)
	for image, want := range map[string]string{
		"quay.io/coreos/etcd":           "narrow",
		"quay.io/prometheus/prometheus": "broad",
		"registry.example.com/app":      "exact",
		"mirror.example.com/app":        "wild",
		"index.docker.io/library/nginx": "",
	} {
		repo, err := ggcrname.NewRepository(image)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := authn.Resolve(t.Context(), kc, repo)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if auth != authn.Anonymous {
				t.Errorf("%s: %v, want anonymous", image, auth)
			}
			continue
		}
		ac, err := authn.Authorization(t.Context(), auth)
		if err != nil || ac.Username != want || ac.Password != "pw-"+want {
			t.Errorf("%s: user %q (%v), want %q", image, ac.Username, err, want)
		}
	}
}

func TestAMalformedPullSecretIsAnErrorWithoutItsData(t *testing.T) {
	tests := []struct {
		name   string
		secret *corev1.Secret
	}{
		{"dockerconfigjson that is not JSON", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte("hunter2-not-json")}}},
		{"an auth that is not base64", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"ghcr.io":{"auth":"hunter2!!"}}}`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.secret.Namespace, tt.secret.Name = "team", "pull"
			_, err := secretCredentials(tt.secret)
			if err == nil || !strings.Contains(err.Error(), "pull secret team/pull") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("secretCredentials() = %v, want an error naming the Secret and not its data", err)
			}
		})
	}
	opaque := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"x": []byte("y")}}
	if creds, err := secretCredentials(opaque); err != nil || creds != nil {
		t.Errorf("an Opaque Secret gave %v, %v; want nothing", creds, err)
	}
}

// everythingMirrored is a mirror that has every image.
type everythingMirrored struct{}

func (everythingMirrored) Present(context.Context, reference.Reference) (string, bool, error) {
	return "", true, nil
}
func (everythingMirrored) Enqueue(_, _ reference.Reference, _ authn.Keychain) {}
func (everythingMirrored) Ensure(context.Context, reference.Reference, reference.Reference, authn.Keychain) (string, error) {
	return "", nil
}

// BenchmarkMutatePod5ContainersWithPullSecrets measures what a Pod's
// keychain costs an admission whose images are mirrored: it is built, not
// read, so the API is never asked.
func BenchmarkMutatePod5ContainersWithPullSecrets(b *testing.B) {
	for _, withSecrets := range []bool{false, true} {
		b.Run(fmt.Sprintf("pullSecrets=%v", withSecrets), func(b *testing.B) {
			client := fake.NewClientset()
			body := readFile(b, filepath.Join("testdata", "requests", "pod-5-containers.json"))
			s := newTestServer(b, "config.yaml", func(o *Options) {
				o.Logger = nil
				o.Mirror = everythingMirrored{}
				if withSecrets {
					o.PullSecrets = NewPullSecrets(client, nil, 0)
				}
			})
			b.ReportAllocs()
			for b.Loop() {
				if rec := post(s.Handler(), "/mutate", body); rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
			if n := len(client.Actions()); n != 0 {
				b.Fatalf("%d API requests for mirrored images, want 0", n)
			}
		})
	}
}
