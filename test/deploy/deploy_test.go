// Package deploy_test checks the install artifacts in deploy/: the Helm
// chart lints and renders what each TLS mode needs, deploy/release.yaml is
// what deploy/render.sh renders now, and a real kube-apiserver accepts every
// object of release.yaml.
//
// Helm comes from IMAGE_SWAPPER_HELM3 and IMAGE_SWAPPER_HELM4 (`eval
// "$(bash .ci/tools.sh helm)"`), the control plane from KUBEBUILDER_ASSETS
// (`eval "$(bash .ci/tools.sh kube)"`). Without them the tests skip, except
// in CI (CI=true), where they fail.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

const (
	chartDir    = "../../deploy/helm/image-swapper"
	releaseFile = "../../deploy/release.yaml"
	renderShell = "../../deploy/render.sh"

	// release and namespace are what render.sh renders with; the full name
	// of every object is the release name.
	release   = "image-swapper"
	namespace = "image-swapper"

	mutateWebhook   = "mutate.image-swapper.io"
	validateWebhook = "validate.image-swapper.io"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// helmVariables name the Helm binaries every Helm test runs with.
var helmVariables = []string{"IMAGE_SWAPPER_HELM3", "IMAGE_SWAPPER_HELM4"}

// requireHelm returns the Helm binary the variable names, skipping the test
// (failing in CI) when it is unset.
func requireHelm(t *testing.T, variable string) string {
	t.Helper()
	bin := os.Getenv(variable)
	testenv.Require(t, bin != "", "%s is not set: run `eval \"$(bash .ci/tools.sh helm)\"` to build Helm 3 and 4 and export it", variable)
	return bin
}

// helm runs bin with args in an isolated Helm home and returns its stdout,
// or an error with its stderr.
func helm(t *testing.T, bin string, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// template renders the chart as render.sh does, with more --set values;
// an entry that starts with -- is a flag of its own (--set-file=K=FILE).
func template(t *testing.T, bin string, set ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	for _, s := range set {
		if strings.HasPrefix(s, "--") {
			args = append(args, s)
			continue
		}
		args = append(args, "--set", s)
	}
	return helm(t, bin, args...)
}

// objects are rendered Kubernetes objects in the order of the manifest.
type objects []*unstructured.Unstructured

// parseObjects decodes a multi-document YAML stream, leaving out empty
// documents.
func parseObjects(data []byte) (objects, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out objects
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", len(out)+1, err)
		}
		if m == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of kind and name, or nil.
func (objs objects) find(kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// kinds lists "Kind/name" of every object.
func (objs objects) kinds() []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// decode converts the object of kind and name into into, failing the test
// when it is missing.
func (objs objects) decode(t *testing.T, kind, name string, into any) {
	t.Helper()
	o := objs.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %q among %v", kind, name, objs.kinds())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %q: %v", kind, name, err)
	}
}

// rendered is the typed view of the objects every TLS mode renders.
type rendered struct {
	objs        objects
	deployment  appsv1.Deployment
	container   corev1.Container
	clusterRole rbacv1.ClusterRole
	mutating    admissionregistrationv1.MutatingWebhookConfiguration
	validating  admissionregistrationv1.ValidatingWebhookConfiguration
}

func decodeRendered(t *testing.T, objs objects) *rendered {
	t.Helper()
	r := &rendered{objs: objs}
	objs.decode(t, "Deployment", release, &r.deployment)
	objs.decode(t, "ClusterRole", release, &r.clusterRole)
	objs.decode(t, "MutatingWebhookConfiguration", release, &r.mutating)
	objs.decode(t, "ValidatingWebhookConfiguration", release, &r.validating)
	if n := len(r.deployment.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers, want 1", n)
	}
	r.container = r.deployment.Spec.Template.Spec.Containers[0]
	if len(r.mutating.Webhooks) != 1 || len(r.validating.Webhooks) != 1 {
		t.Fatalf("webhook configurations have %d and %d webhooks, want 1 each", len(r.mutating.Webhooks), len(r.validating.Webhooks))
	}
	return r
}

// clientConfigs are the clientConfigs of both configurations.
func (r *rendered) clientConfigs() []admissionregistrationv1.WebhookClientConfig {
	return []admissionregistrationv1.WebhookClientConfig{r.mutating.Webhooks[0].ClientConfig, r.validating.Webhooks[0].ClientConfig}
}

// grantsWebhookConfigurations reports whether the ClusterRole has a rule on
// the webhook configurations.
func (r *rendered) grantsWebhookConfigurations() bool {
	for _, rule := range r.clusterRole.Rules {
		if slices.Contains(rule.APIGroups, admissionregistrationv1.GroupName) {
			return true
		}
	}
	return false
}

// arg returns the value of --name=value among the container's args.
func arg(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestChartLints(t *testing.T) {
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			for _, set := range [][]string{
				nil,
				{"tls.mode=certManager"},
				{"tls.mode=secret", "tls.secretName=my-tls", "tls.caBundle=Q0E="},
				{"serviceMonitor.enabled=true"},
			} {
				args := []string{"lint", "--strict", chartDir}
				for _, s := range set {
					args = append(args, "--set", s)
				}
				if _, err := helm(t, bin, args...); err != nil {
					t.Errorf("with %v: %v", set, err)
				}
			}
		})
	}
}

func TestTemplateRendersEachTLSMode(t *testing.T) {
	tests := []struct {
		name  string
		set   []string
		check func(t *testing.T, r *rendered)
	}{
		{"default values manage a self-signed certificate and leave caBundle to the server", nil, func(t *testing.T, r *rendered) {
			args := r.container.Args
			for _, want := range []string{"serve", "--self-signed", "--self-signed-secret=image-swapper-tls", "--service=image-swapper", "--webhook-config=image-swapper"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %q", args, want)
				}
			}
			if _, ok := arg(args, "--tls-cert"); ok {
				t.Errorf("args %v have --tls-cert with --self-signed", args)
			}
			for _, cc := range r.clientConfigs() {
				if len(cc.CABundle) != 0 {
					t.Errorf("a webhook has caBundle %q; the server manages it", cc.CABundle)
				}
			}
			if !r.grantsWebhookConfigurations() {
				t.Errorf("ClusterRole %v does not let the server patch its webhook configurations", r.clusterRole.Rules)
			}
			var role rbacv1.Role
			r.objs.decode(t, "Role", release+"-tls", &role)
			wantRole := []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"image-swapper-tls"}, Verbs: []string{"get", "update"}},
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
			}
			if fmt.Sprint(role.Rules) != fmt.Sprint(wantRole) {
				t.Errorf("Role rules = %v, want %v", role.Rules, wantRole)
			}
			if o := r.objs.find("RoleBinding", release+"-tls"); o == nil {
				t.Errorf("no RoleBinding for the Role among %v", r.objs.kinds())
			}
			for _, kind := range []string{"Certificate", "Issuer", "ServiceMonitor"} {
				if o := r.objs.find(kind, release); o != nil {
					t.Errorf("a %s is rendered by default", kind)
				}
			}
		}},
		{"certManager mode mounts the Certificate's Secret and has cert-manager inject the CA", []string{"tls.mode=certManager"}, func(t *testing.T, r *rendered) {
			args := r.container.Args
			if slices.Contains(args, "--self-signed") {
				t.Errorf("args %v have --self-signed", args)
			}
			if v, _ := arg(args, "--tls-cert"); v != "/etc/image-swapper/tls/tls.crt" {
				t.Errorf("--tls-cert = %q, want /etc/image-swapper/tls/tls.crt", v)
			}
			for _, o := range []metav1.ObjectMeta{r.mutating.ObjectMeta, r.validating.ObjectMeta} {
				if got := o.Annotations["cert-manager.io/inject-ca-from"]; got != "image-swapper/image-swapper" {
					t.Errorf("%s: cert-manager.io/inject-ca-from = %q, want image-swapper/image-swapper", o.Name, got)
				}
			}
			cert := r.objs.find("Certificate", release)
			if cert == nil {
				t.Fatalf("no Certificate among %v", r.objs.kinds())
			}
			if got, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); got != "image-swapper-tls" {
				t.Errorf("Certificate secretName = %q, want image-swapper-tls", got)
			}
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, "image-swapper.image-swapper.svc") {
				t.Errorf("Certificate dnsNames %v lack the Service's name image-swapper.image-swapper.svc", dns)
			}
			if got, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name"); r.objs.find("Issuer", got) == nil {
				t.Errorf("Certificate's issuer %q is not rendered", got)
			}
			checkTLSVolume(t, r, "image-swapper-tls")
			checkNoSelfSignedRBAC(t, r)
		}},
		{"secret mode mounts the named Secret and templates the given caBundle", []string{"tls.mode=secret", "tls.secretName=my-tls", "tls.caBundle=Q0E="}, func(t *testing.T, r *rendered) {
			for _, cc := range r.clientConfigs() {
				if string(cc.CABundle) != "CA" {
					t.Errorf("caBundle = %q, want CA (base64 Q0E=)", cc.CABundle)
				}
			}
			if v, _ := arg(r.container.Args, "--tls-key"); v != "/etc/image-swapper/tls/tls.key" {
				t.Errorf("--tls-key = %q, want /etc/image-swapper/tls/tls.key", v)
			}
			checkTLSVolume(t, r, "my-tls")
			checkNoSelfSignedRBAC(t, r)
			if o := r.objs.find("Certificate", release); o != nil {
				t.Errorf("a Certificate is rendered in secret mode")
			}
		}},
		{"serviceMonitor.enabled scrapes /metrics on the HTTPS port", []string{"serviceMonitor.enabled=true"}, func(t *testing.T, r *rendered) {
			sm := r.objs.find("ServiceMonitor", release)
			if sm == nil {
				t.Fatalf("no ServiceMonitor among %v", r.objs.kinds())
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(eps) != 1 {
				t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(eps))
			}
			ep := eps[0].(map[string]any)
			if ep["port"] != "https" || ep["scheme"] != "https" || ep["path"] != "/metrics" {
				t.Errorf("ServiceMonitor endpoint = %v, want port https, scheme https, path /metrics", ep)
			}
		}},
		{"a configuration file given with --set-file is kept as written", []string{"--set-file=config=testdata/config.yaml"}, func(t *testing.T, r *rendered) {
			var cm corev1.ConfigMap
			r.objs.decode(t, "ConfigMap", release+"-config", &cm)
			want, err := os.ReadFile("testdata/config.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := cm.Data["config.yaml"]; got != string(want) {
				t.Errorf("config.yaml = %q, want %q", got, want)
			}
		}},
		{"an image digest wins over the tag", []string{"image.digest=sha256:0a4eaa0eecf5f8c050e5bba433f58c052be7587ee8af3e8b3910ef9ab5fbe9f5"}, func(t *testing.T, r *rendered) {
			want := "ghcr.io/image-swapper/image-swapper@sha256:0a4eaa0eecf5f8c050e5bba433f58c052be7587ee8af3e8b3910ef9ab5fbe9f5"
			if r.container.Image != want {
				t.Errorf("image = %q, want %q", r.container.Image, want)
			}
		}},
		{"one replica renders no PodDisruptionBudget that would block drains", []string{"replicaCount=1"}, func(t *testing.T, r *rendered) {
			if o := r.objs.find("PodDisruptionBudget", release); o != nil {
				t.Errorf("a PodDisruptionBudget is rendered for one replica")
			}
		}},
		{"failure policies and excluded namespaces come from values", []string{"webhook.mutate.failurePolicy=Fail", "webhook.validate.failurePolicy=Ignore", "webhook.excludedNamespaces={kube-system,monitoring}"}, func(t *testing.T, r *rendered) {
			if got := *r.mutating.Webhooks[0].FailurePolicy; got != admissionregistrationv1.Fail {
				t.Errorf("mutate failurePolicy = %s, want Fail", got)
			}
			if got := *r.validating.Webhooks[0].FailurePolicy; got != admissionregistrationv1.Ignore {
				t.Errorf("validate failurePolicy = %s, want Ignore", got)
			}
			checkExcludedNamespaces(t, r.mutating.Webhooks[0].NamespaceSelector, namespace, "kube-system", "monitoring")
		}},
	}
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					out, err := template(t, bin, tt.set...)
					if err != nil {
						t.Fatal(err)
					}
					objs, err := parseObjects(out)
					if err != nil {
						t.Fatalf("helm template output: %v", err)
					}
					r := decodeRendered(t, objs)
					checkCommon(t, r)
					tt.check(t, r)
				})
			}
		})
	}
}

func TestTemplateRefusesBadTLSValues(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"an unknown tls.mode is named", []string{"tls.mode=selfsigned"}, `tls.mode: "selfsigned" is not one of selfSigned, certManager, secret`},
		{"secret mode needs the Secret's name", []string{"tls.mode=secret", "tls.caBundle=Q0E="}, "tls.secretName is required with tls.mode=secret"},
		{"secret mode needs the CA bundle", []string{"tls.mode=secret", "tls.secretName=my-tls"}, "tls.caBundle is required with tls.mode=secret"},
	}
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, err := template(t, bin, tt.set...)
					if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Errorf("helm template with %v: error %v, want one containing %q", tt.set, err, tt.want)
					}
				})
			}
		})
	}
}

// checkCommon checks what every TLS mode renders the same way.
func checkCommon(t *testing.T, r *rendered) {
	t.Helper()
	d := r.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 1 {
		t.Errorf("Deployment replicas = %v", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != release {
		t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, release)
	}
	if psc := pod.SecurityContext; psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	c := r.container
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("container has no securityContext")
	case sc.RunAsUser == nil || *sc.RunAsUser != 65532:
		t.Errorf("container runAsUser = %v, want 65532", sc.RunAsUser)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("container capabilities = %+v, want drop [ALL]", sc.Capabilities)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("container resources = %+v, want CPU requests and a memory limit", c.Resources)
	}
	for name, probe := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != name || probe.HTTPGet.Scheme != corev1.URISchemeHTTPS || probe.HTTPGet.Port.String() != "https" {
			t.Errorf("probe for %s = %+v, want HTTPS GET %s on port https", name, probe, name)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "https" || c.Ports[0].ContainerPort != 8443 {
		t.Errorf("container ports = %+v, want https 8443", c.Ports)
	}
	if len(c.Env) < 2 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" ||
		c.Env[1].Name != "XDG_STATE_HOME" || c.Env[1].Value != "/var/lib/image-swapper" {
		t.Errorf("container env = %+v, want POD_NAMESPACE from metadata.namespace and XDG_STATE_HOME=/var/lib/image-swapper (the ledger's volume)", c.Env)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "state" && m.MountPath == "/var/lib/image-swapper" && !m.ReadOnly
	}) {
		t.Errorf("volume mounts = %+v, want the writable state volume at /var/lib/image-swapper: the root file system is read-only", c.VolumeMounts)
	}
	checkConfig(t, r)

	var svc corev1.Service
	r.objs.decode(t, "Service", release, &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "https" {
		t.Errorf("Service ports = %+v, want 443 to https", svc.Spec.Ports)
	}
	if r.objs.find("ServiceAccount", release) == nil || r.objs.find("ClusterRoleBinding", release) == nil {
		t.Errorf("ServiceAccount or ClusterRoleBinding %q missing among %v", release, r.objs.kinds())
	}
	if *d.Spec.Replicas > 1 {
		var pdb policyv1.PodDisruptionBudget
		r.objs.decode(t, "PodDisruptionBudget", release, &pdb)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", pdb.Spec.MinAvailable)
		}
	}
	checkWebhooks(t, r, &d)
}

// checkConfig checks that the configuration is mounted as a directory
// (a subPath mount never sees a ConfigMap change) and parses.
func checkConfig(t *testing.T, r *rendered) {
	t.Helper()
	path, ok := arg(r.container.Args, "--config")
	if !ok {
		t.Fatalf("args %v have no --config", r.container.Args)
	}
	var mount *corev1.VolumeMount
	for i, m := range r.container.VolumeMounts {
		if m.Name == "config" {
			mount = &r.container.VolumeMounts[i]
		}
	}
	if mount == nil || mount.SubPath != "" || filepath.Dir(path) != mount.MountPath {
		t.Errorf("config mount = %+v, want the directory of --config=%s without subPath", mount, path)
	}
	var cm corev1.ConfigMap
	r.objs.decode(t, "ConfigMap", release+"-config", &cm)
	data, ok := cm.Data[filepath.Base(path)]
	if !ok {
		t.Fatalf("ConfigMap has no key %s: %v", filepath.Base(path), cm.Data)
	}
	if _, err := config.Parse(filepath.Base(path), []byte(data)); err != nil {
		t.Errorf("the rendered configuration does not parse: %v", err)
	}
}

// checkWebhooks checks the fields both configurations share in every mode.
func checkWebhooks(t *testing.T, r *rendered, d *appsv1.Deployment) {
	t.Helper()
	budget := 8 * time.Second // serve's default
	if v, ok := arg(d.Spec.Template.Spec.Containers[0].Args, "--admission-budget"); ok {
		var err error
		if budget, err = time.ParseDuration(v); err != nil {
			t.Fatalf("--admission-budget=%s: %v", v, err)
		}
	}
	m, v := r.mutating.Webhooks[0], r.validating.Webhooks[0]
	if m.Name != mutateWebhook || v.Name != validateWebhook {
		t.Errorf("webhook names = %s, %s, want %s, %s", m.Name, v.Name, mutateWebhook, validateWebhook)
	}
	for _, w := range []struct {
		name    string
		path    string
		cc      admissionregistrationv1.WebhookClientConfig
		rules   []admissionregistrationv1.RuleWithOperations
		timeout *int32
		ns      *metav1.LabelSelector
	}{
		{m.Name, "/mutate", m.ClientConfig, m.Rules, m.TimeoutSeconds, m.NamespaceSelector},
		{v.Name, "/validate", v.ClientConfig, v.Rules, v.TimeoutSeconds, v.NamespaceSelector},
	} {
		if s := w.cc.Service; s == nil || s.Name != release || s.Namespace != namespace || s.Path == nil || *s.Path != w.path || s.Port == nil || *s.Port != 443 {
			t.Errorf("%s: clientConfig.service = %+v, want %s/%s:443%s", w.name, s, namespace, release, w.path)
		}
		if w.timeout == nil {
			t.Errorf("%s: no timeoutSeconds, want more than --admission-budget %s", w.name, budget)
		} else if time.Duration(*w.timeout)*time.Second <= budget {
			t.Errorf("%s: timeoutSeconds = %d, want more than --admission-budget %s", w.name, *w.timeout, budget)
		}
		if len(w.rules) != 1 || !slices.Equal(w.rules[0].Resources, []string{"pods", "pods/ephemeralcontainers"}) ||
			!slices.Equal(w.rules[0].Operations, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
			t.Errorf("%s: rules = %+v, want pods and pods/ephemeralcontainers on CREATE and UPDATE", w.name, w.rules)
		}
		checkExcludedNamespaces(t, w.ns, namespace, "kube-system")
	}
	if m.ReinvocationPolicy == nil || *m.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("mutate reinvocationPolicy = %v, want IfNeeded", m.ReinvocationPolicy)
	}
	if m.SideEffects == nil || *m.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
		t.Errorf("mutate sideEffects = %v, want NoneOnDryRun", m.SideEffects)
	}
	if v.SideEffects == nil || *v.SideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
		t.Errorf("validate sideEffects = %v, want NoneOnDryRun (Events, scans)", v.SideEffects)
	}
	if m.ObjectSelector != nil && (len(m.ObjectSelector.MatchLabels) > 0 || len(m.ObjectSelector.MatchExpressions) > 0) {
		t.Errorf("mutate objectSelector = %+v; the engine handles the opt-out label and must still gate", m.ObjectSelector)
	}
}

// checkExcludedNamespaces checks that sel leaves out each of names by
// kubernetes.io/metadata.name NotIn.
func checkExcludedNamespaces(t *testing.T, sel *metav1.LabelSelector, names ...string) {
	t.Helper()
	if sel == nil {
		t.Errorf("no namespaceSelector; want one excluding %v", names)
		return
	}
	for _, e := range sel.MatchExpressions {
		if e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpNotIn {
			for _, n := range names {
				if !slices.Contains(e.Values, n) {
					t.Errorf("namespaceSelector %+v does not exclude %s", e, n)
				}
			}
			return
		}
	}
	t.Errorf("namespaceSelector %+v has no %s NotIn expression", sel, corev1.LabelMetadataName)
}

// checkTLSVolume checks that the Secret secret is mounted where --tls-cert
// and --tls-key point.
func checkTLSVolume(t *testing.T, r *rendered, secret string) {
	t.Helper()
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Name == "tls" {
			if v.Secret == nil || v.Secret.SecretName != secret {
				t.Errorf("tls volume = %+v, want Secret %s", v.VolumeSource, secret)
			}
			for _, m := range r.container.VolumeMounts {
				if m.Name == "tls" && m.MountPath != "/etc/image-swapper/tls" {
					t.Errorf("tls volume mounted at %s, want /etc/image-swapper/tls", m.MountPath)
				}
			}
			return
		}
	}
	t.Errorf("no tls volume among %+v", r.deployment.Spec.Template.Spec.Volumes)
}

// checkNoSelfSignedRBAC checks that without --self-signed the server gets
// no access to Secrets in its namespace or to webhook configurations.
func checkNoSelfSignedRBAC(t *testing.T, r *rendered) {
	t.Helper()
	if o := r.objs.find("Role", release+"-tls"); o != nil {
		t.Errorf("Role %s is rendered without --self-signed", o.GetName())
	}
	if r.grantsWebhookConfigurations() {
		t.Errorf("ClusterRole grants webhook configurations without --self-signed: %v", r.clusterRole.Rules)
	}
}

func TestReleaseIsWhatRenderShRendersNow(t *testing.T) {
	checkRenderedIsCurrent(t, releaseFile)
}

// checkRenderedIsCurrent checks that file is what deploy/render.sh prints
// with args and then "-" (stdout), with each major version of Helm.
func checkRenderedIsCurrent(t *testing.T, file string, args ...string) {
	t.Helper()
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	args = append(append([]string{renderShell}, args...), "-")
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			cmd := exec.Command("bash", args...)
			// Only this Helm, so that each major version is checked.
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "IMAGE_SWAPPER_HELM")
			})
			cmd.Env = append(env, variable+"="+bin)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale: run `eval \"$(bash .ci/tools.sh helm)\"; deploy/render.sh`; first difference at line %d", strings.TrimPrefix(file, "../../"), firstDifferentLine(got, want))
			}
		})
	}
}

// firstDifferentLine is the 1-based number of the first line where a and b
// differ.
func firstDifferentLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

func TestReleaseIsAcceptedByTheAPIServer(t *testing.T) {
	data, err := os.ReadFile(releaseFile)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", releaseFile, err)
	}
	if len(objs) == 0 || objs[0].GetKind() != "Namespace" || objs[0].GetName() != namespace {
		t.Fatalf("%s starts with %v, want Namespace %s first", releaseFile, objs.kinds(), namespace)
	}

	plane := testenv.SharedControlPlane(t)
	cfg := plane.Config()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	ctx := context.Background()

	// Namespace first: everything else but the cluster-scoped objects lives
	// in it. Strict field validation makes the server refuse unknown and
	// duplicate fields, not just drop them.
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, o.GetName(), err)
		}
		res := dyn.Resource(m.Resource)
		var client dynamic.ResourceInterface = res
		if ns := o.GetNamespace(); ns != "" {
			client = res.Namespace(ns)
		}
		if _, err := client.Create(ctx, o, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Errorf("creating %s %s: %v", gvk.Kind, o.GetName(), err)
			continue
		}
		if o.GetNamespace() == "" && gvk.Kind != "Namespace" {
			// Cluster-scoped objects would outlive the namespace.
			t.Cleanup(func() {
				if err := client.Delete(context.Background(), o.GetName(), metav1.DeleteOptions{}); err != nil {
					t.Errorf("deleting %s %s: %v", gvk.Kind, o.GetName(), err)
				}
			})
		}
	}
	if t.Failed() {
		return
	}

	// Read back what the server stored, defaults included, and check it
	// as the e2e registers its webhooks.
	stored := objects{}
	for _, kind := range []string{"Deployment", "ClusterRole", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		o := objs.find(kind, release)
		if o == nil {
			t.Fatalf("no %s %s among %v", kind, release, objs.kinds())
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		var client dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if o.GetNamespace() != "" {
			client = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		got, err := client.Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading back %s %s: %v", kind, release, err)
		}
		stored = append(stored, got)
	}
	r := decodeRendered(t, stored)
	checkWebhooks(t, r, &r.deployment)
	if got := *r.mutating.Webhooks[0].FailurePolicy; got != admissionregistrationv1.Ignore {
		t.Errorf("mutate failurePolicy = %s, want Ignore by default", got)
	}
	if got := *r.validating.Webhooks[0].FailurePolicy; got != admissionregistrationv1.Fail {
		t.Errorf("validate failurePolicy = %s, want Fail by default", got)
	}
}
