package engine

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// testConfig is a configuration that exercises every tier, action and mode.
func testConfig() *config.Config {
	return &config.Config{
		SourceRegistries: []string{"docker.io", "quay.io", "ghcr.io", "localhost:5000", "[::1]:5000", "*.gcr.io"},
		TargetRegistry:   "registry.example.com",
		Policies: config.Policies{
			AllowList: []string{"registry.example.com/*", "registry.k8s.io/*", "gcr.io/distroless/*"},
			DenyList:  []string{"docker.io/unknown/*", "*:latest-unsafe"},
		},
		Rules: []config.Rule{
			{Name: "pin-nginx", Image: "nginx:1.25", Target: "registry.example.com/pinned/nginx:1.25.5"},
			{Name: "bitnami", Repository: "bitnami/*", Target: "registry.example.com/bitnami/{suffix}"},
			{Name: "keep-k8s", Registry: "registry.k8s.io", Action: config.ActionKeep},
			{Name: "no-evil", Repository: "docker.io/evil/*", Action: config.ActionDeny, Message: "evil images are not allowed"},
			{Name: "old-quay", Repository: "quay.io/old/*", Action: config.ActionDeny, Mode: config.ModeWarn, Message: "migrate off quay.io/old"},
			{Name: "audit-team", Repository: "ghcr.io/team/*", Action: config.ActionDeny, Mode: config.ModeAudit},
			{Name: "payments-mirror", Registry: "docker.io", Target: "{target}/payments/{image}",
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}},
			{Name: "canary", Registry: "quay.io", Target: "{target}/canary/{image}",
				Condition: `object.labels["track"] == "canary" && image.tag != "latest"`},
		},
	}
}

func newTestEngine(t testing.TB, cfg *config.Config, opts ...Option) *Engine {
	t.Helper()
	e, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestDecide(t *testing.T) {
	e := newTestEngine(t, testConfig(), WithOwnNamespace("image-swapper"))
	cases := []struct {
		name    string
		image   string
		ctx     rules.Context
		action  config.Action
		target  string
		rule    string
		because string // a substring of one of the reasons
	}{
		{"docker hub short name is swapped with its registry in the path", "nginx:1.27", rules.Context{}, config.ActionSwap,
			"registry.example.com/docker.io/library/nginx:1.27", "sourceRegistries[0]", "swapped by rule sourceRegistries[0]"},
		{"no tag and no digest writes latest explicitly", "nginx", rules.Context{}, config.ActionSwap,
			"registry.example.com/docker.io/library/nginx:latest", "sourceRegistries[0]", ""},
		{"index.docker.io is docker.io", "index.docker.io/library/redis:7", rules.Context{}, config.ActionSwap,
			"registry.example.com/docker.io/library/redis:7", "sourceRegistries[0]", ""},
		{"tag and digest are both kept", "quay.io/prometheus/prometheus:v3.1.0@sha256:" + strings.Repeat("ab", 32), rules.Context{}, config.ActionSwap,
			"registry.example.com/quay.io/prometheus/prometheus:v3.1.0@sha256:" + strings.Repeat("ab", 32), "sourceRegistries[1]", ""},
		{"digest only stays digest only", "ghcr.io/org/app@sha256:" + strings.Repeat("cd", 32), rules.Context{}, config.ActionSwap,
			"registry.example.com/ghcr.io/org/app@sha256:" + strings.Repeat("cd", 32), "sourceRegistries[2]", ""},
		{"a registry port becomes host_port in the path", "localhost:5000/team/app:dev", rules.Context{}, config.ActionSwap,
			"registry.example.com/localhost_5000/team/app:dev", "sourceRegistries[3]", ""},
		{"a wildcard source registry matches subdomains", "eu.gcr.io/proj/app:1", rules.Context{}, config.ActionSwap,
			"registry.example.com/eu.gcr.io/proj/app:1", "sourceRegistries[5]", ""},
		{"an exact image rule wins over the registry", "nginx:1.25", rules.Context{}, config.ActionSwap,
			"registry.example.com/pinned/nginx:1.25.5", "pin-nginx", "image docker.io/library/nginx:1.25"},
		{"a repository rule with suffix replaces a prefix", "bitnami/redis:7.2", rules.Context{}, config.ActionSwap,
			"registry.example.com/bitnami/redis:7.2", "bitnami", "repository docker.io/bitnami/*"},
		{"a keep rule keeps, and the allowList lets it pass", "registry.k8s.io/pause:3.10", rules.Context{}, config.ActionKeep,
			"registry.k8s.io/pause:3.10", "keep-k8s", "allowList"},
		{"a deny rule denies with its message", "docker.io/evil/miner:1", rules.Context{}, config.ActionDeny,
			"", "no-evil", "evil images are not allowed"},
		{"the denyList matches the original even when it would be swapped", "docker.io/unknown/thing:2", rules.Context{}, config.ActionDeny,
			"", `policies.denyList[0] "docker.io/unknown/*"`, "denyList"},
		{"the denyList matches the swapped reference too", "quay.io/x/y:latest-unsafe", rules.Context{}, config.ActionDeny,
			"", `policies.denyList[1] "*:latest-unsafe"`, ""},
		{"an image already in the target is kept", "registry.example.com/docker.io/library/nginx:1.27", rules.Context{}, config.ActionKeep,
			"registry.example.com/docker.io/library/nginx:1.27", "sourceRegistries[0]", "never swapped again"},
		{"an image that only looks like the target host is not allowed", "registry.example.com.evil.io/x:1", rules.Context{}, config.ActionDeny,
			"", "policies.allowList", "neither swapped nor in the allowList"},
		{"an image neither swapped nor allowed is denied", "mcr.microsoft.com/dotnet/runtime:8.0", rules.Context{}, config.ActionDeny,
			"", "policies.allowList", "not a source registry"},
		{"an allowed image from another registry is kept", "gcr.io/distroless/static:nonroot", rules.Context{}, config.ActionKeep,
			"gcr.io/distroless/static:nonroot", "", "allowList"},
		{"a warn-mode deny rule admits and swaps as the next rule says", "quay.io/old/tool:1", rules.Context{}, config.ActionSwap,
			"registry.example.com/quay.io/old/tool:1", "sourceRegistries[1]", "warn mode: admitted"},
		{"an audit-mode deny rule admits", "ghcr.io/team/api:2", rules.Context{}, config.ActionSwap,
			"registry.example.com/ghcr.io/team/api:2", "sourceRegistries[2]", "audit mode: admitted"},
		{"a namespace selector picks its rule", "redis:7", rules.Context{Namespace: "shop", NamespaceLabels: map[string]string{"team": "payments"}}, config.ActionSwap,
			"registry.example.com/payments/docker.io/library/redis:7", "payments-mirror", ""},
		{"a rule whose namespace selector does not match is skipped", "redis:7", rules.Context{Namespace: "web"}, config.ActionSwap,
			"registry.example.com/docker.io/library/redis:7", "sourceRegistries[0]", "rule payments-mirror skipped"},
		{"a CEL condition picks its rule", "quay.io/app/web:2", rules.Context{Object: rules.Object{Labels: map[string]string{"track": "canary"}}}, config.ActionSwap,
			"registry.example.com/canary/quay.io/app/web:2", "canary", ""},
		{"a false CEL condition skips the rule", "quay.io/app/web:latest", rules.Context{Object: rules.Object{Labels: map[string]string{"track": "canary"}}}, config.ActionSwap,
			"registry.example.com/quay.io/app/web:latest", "sourceRegistries[1]", "condition"},
		{"the opt-out label keeps the image", "nginx:1.27", rules.Context{Object: rules.Object{Labels: map[string]string{OptOutLabel: OptOutValue}}}, config.ActionDeny,
			"", "policies.allowList", "labelled image-swapper.io/swap=disabled"},
		{"kube-system is left alone", "nginx:1.27", rules.Context{Namespace: "kube-system"}, config.ActionKeep,
			"nginx:1.27", "", "excluded by default"},
		{"the server's own namespace is left alone", "nginx:1.27", rules.Context{Namespace: "image-swapper"}, config.ActionKeep,
			"nginx:1.27", "", "excluded by default"},
		{"an invalid reference is denied with the input quoted", "Nginx:1", rules.Context{}, config.ActionDeny,
			"", "reference", `"Nginx:1"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(Subject{Image: c.image, Context: c.ctx})
			if d.Action != c.action || d.Target != c.target || d.Rule != c.rule {
				t.Fatalf("Decide(%q) = action %s, target %q, rule %q; want %s, %q, %q\nreasons: %q",
					c.image, d.Action, d.Target, d.Rule, c.action, c.target, c.rule, d.Reasons)
			}
			if c.because != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), c.because) {
				t.Errorf("reasons %q do not mention %q", d.Reasons, c.because)
			}
		})
	}
}

func TestNamespaceIncludeOverridesTheDefaultExclusion(t *testing.T) {
	cfg := testConfig()
	cfg.Namespaces.Include = []string{"kube-system"}
	cfg.Namespaces.Exclude = []string{"legacy-*"}
	e := newTestEngine(t, cfg)
	if d := e.Decide(Subject{Image: "nginx:1.27", Context: rules.Context{Namespace: "kube-system"}}); d.Action != config.ActionSwap {
		t.Errorf("kube-system, included: action %s, want swap (%q)", d.Action, d.Reasons)
	}
	d := e.Decide(Subject{Image: "nginx:1.27", Context: rules.Context{Namespace: "legacy-billing"}})
	if d.Action != config.ActionKeep || !strings.Contains(strings.Join(d.Reasons, " "), "namespaces.exclude[0]") {
		t.Errorf("legacy-billing: action %s, reasons %q; want keep by namespaces.exclude[0]", d.Action, d.Reasons)
	}
}

func TestMirroringDisabledOnlyGates(t *testing.T) {
	cfg := testConfig()
	off := false
	cfg.Mirroring.Enabled = &off
	e := newTestEngine(t, cfg)
	d := e.Decide(Subject{Image: "registry.k8s.io/pause:3.10"})
	if d.Action != config.ActionKeep {
		t.Errorf("allowed image: action %s, want keep", d.Action)
	}
	d = e.Decide(Subject{Image: "nginx:1.27"})
	if d.Action != config.ActionDeny || !strings.Contains(strings.Join(d.Reasons, " "), "mirroring.enabled is false") {
		t.Errorf("nginx with mirroring off: action %s, reasons %q; want deny (not swapped, not allowed)", d.Action, d.Reasons)
	}
}

func TestMirroringNamespaceSelector(t *testing.T) {
	// The product's own example: swap only in namespaces labelled enable-mirroring=true.
	cfg := &config.Config{
		SourceRegistries: []string{"docker.io", "quay.io"},
		TargetRegistry:   "registry.example.com",
		Mirroring: config.Mirroring{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"enable-mirroring": "true"}},
		},
	}
	e := newTestEngine(t, cfg)
	on := e.Decide(Subject{Image: "nginx", Context: rules.Context{Namespace: "a", NamespaceLabels: map[string]string{"enable-mirroring": "true"}}})
	if on.Action != config.ActionSwap {
		t.Errorf("labelled namespace: action %s, want swap", on.Action)
	}
	off := e.Decide(Subject{Image: "nginx", Context: rules.Context{Namespace: "b"}})
	if off.Action != config.ActionKeep || !strings.Contains(strings.Join(off.Reasons, " "), "namespaceSelector") {
		t.Errorf("unlabelled namespace: action %s, reasons %q; want keep because of namespaceSelector", off.Action, off.Reasons)
	}
}

func TestNewRejectsCollidingAndBrokenRules(t *testing.T) {
	cases := []struct {
		name string
		rule config.Rule
		want string
	}{
		{"a target without the repository maps many images to one",
			config.Rule{Registry: "docker.io", Target: "registry.example.com/all"}, "rules[0]: target \"registry.example.com/all\" maps every matching repository to one name"},
		{"a wildcard registry rule must keep the registry",
			config.Rule{Registry: "*.gcr.io", Target: "registry.example.com/gcr/{repository}"}, "use {registry} or {image}"},
		{"suffix only exists for repository rules",
			config.Rule{Registry: "docker.io", Target: "registry.example.com/{suffix}"}, "{suffix} is only defined for repository rules"},
		{"an unknown placeholder is named",
			config.Rule{Registry: "docker.io", Target: "registry.example.com/{repo}"}, "unknown placeholder {repo}"},
		{"a target must start with a registry host",
			config.Rule{Registry: "docker.io", Target: "{registry}/{repository}"}, "must begin with a registry host"},
		{"a CEL error names the rule's condition",
			config.Rule{Registry: "docker.io", Target: "{target}/{image}", Condition: "image.tag =="}, "rules[0].condition: invalid CEL expression"},
		{"a CEL condition must be a bool",
			config.Rule{Registry: "docker.io", Target: "{target}/{image}", Condition: "image.tag"}, "must evaluate to a bool"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := &config.Config{TargetRegistry: "registry.example.com", Rules: []config.Rule{c.rule}}
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: error %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("two rules with one registry-less target collide", func(t *testing.T) {
		cfg := &config.Config{TargetRegistry: "registry.example.com", Rules: []config.Rule{
			{Name: "a", Registry: "docker.io", Target: "registry.example.com/m/{repository}"},
			{Name: "b", Registry: "quay.io", Target: "registry.example.com/m/{repository}"},
		}}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "a and b: both send images to one target: docker.io/zz/q:1 (by a) and quay.io/zz/q:1 (by b) would both become registry.example.com/m/zz/q:1") {
			t.Fatalf("New: error %v, want a collision between a and b", err)
		}
	})
}

// corpus is a spread of references as they appear in real manifests.
var corpus = []string{
	"nginx", "nginx:1.27", "nginx:1.25", "library/nginx:stable-alpine", "docker.io/nginx",
	"index.docker.io/library/redis:7", "redis@sha256:" + strings.Repeat("0a", 32),
	"bitnami/postgresql:16.4.0", "bitnami/redis:7.2", "docker.io/bitnami/kafka:3.8",
	"quay.io/prometheus/prometheus:v3.1.0", "quay.io/prometheus/node-exporter:v1.8.2",
	"quay.io/jetstack/cert-manager-controller:v1.16.1", "quay.io/old/tool:1",
	"ghcr.io/fluxcd/source-controller:v1.4.1", "ghcr.io/team/api:2",
	"registry.k8s.io/pause:3.10", "registry.k8s.io/ingress-nginx/controller:v1.11.3@sha256:" + strings.Repeat("d1", 32),
	"gcr.io/distroless/static:nonroot", "eu.gcr.io/proj/app:1", "us.gcr.io/proj/app:1",
	"localhost:5000/team/app:dev", "localhost_5000/team/app:dev", "[::1]:5000/team/app:dev",
	"mcr.microsoft.com/dotnet/runtime:8.0", "public.ecr.aws/docker/library/busybox:1.36",
	"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:3", "docker.io/unknown/thing:2",
	"docker.io/evil/miner:1", "registry.example.com/docker.io/library/nginx:1.27",
	"registry.example.com/pinned/nginx:1.25.5", "registry.example.com.evil.io/x:1",
	"busybox:1.36@sha256:" + strings.Repeat("be", 32), "grafana/grafana:11.3.0",
	"docker.io/grafana/grafana:11.3.0", "quay.io/grafana/grafana:11.3.0",
	"docker.io/team/app", "quay.io/team/app", "ghcr.io/team/app",
}

// TestRewriteIsIdempotent is the idempotence property over the corpus:
// deciding again on what a decision produced changes nothing, in every
// context the test config distinguishes.
func TestRewriteIsIdempotent(t *testing.T) {
	e := newTestEngine(t, testConfig())
	contexts := []rules.Context{
		{},
		{Namespace: "shop", NamespaceLabels: map[string]string{"team": "payments"}},
		{Object: rules.Object{Labels: map[string]string{"track": "canary"}}},
	}
	for _, ctx := range contexts {
		for _, image := range corpus {
			first := e.Decide(Subject{Image: image, Context: ctx})
			if first.Denied() {
				continue
			}
			second := e.Decide(Subject{Image: first.Target, Context: ctx})
			if second.Action != config.ActionKeep || second.Target != first.Target {
				t.Errorf("rewrite(rewrite(%q)) = %s %q, want keep %q (first: %q)", image, second.Action, second.Target, first.Target, first.Reasons)
			}
		}
	}
}

// TestDifferentSourcesNeverShareATarget checks injectivity over the corpus.
func TestDifferentSourcesNeverShareATarget(t *testing.T) {
	e := newTestEngine(t, testConfig())
	seen := map[string]string{}
	for _, image := range corpus {
		d := e.Decide(Subject{Image: image})
		if d.Action != config.ActionSwap {
			continue
		}
		if prev, ok := seen[d.Target]; ok && prev != d.Normalized {
			t.Errorf("%q and %q both map to %q", prev, d.Normalized, d.Target)
		}
		seen[d.Target] = d.Normalized
	}
	if len(seen) < 15 {
		t.Fatalf("only %d swaps in the corpus; the property tested too little", len(seen))
	}
}

func BenchmarkDecide(b *testing.B) {
	e := newTestEngine(b, testConfig())
	s := Subject{Image: "quay.io/prometheus/prometheus:v3.1.0", Context: rules.Context{Namespace: "monitoring"}}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(s)
	}
}

func BenchmarkDecideCorpus(b *testing.B) {
	e := newTestEngine(b, testConfig())
	b.ReportAllocs()
	for b.Loop() {
		for _, image := range corpus {
			e.Decide(Subject{Image: image})
		}
	}
}

func TestRulesPinningOneRegistryMayShareATarget(t *testing.T) {
	cfg := &config.Config{TargetRegistry: "registry.example.com", Rules: []config.Rule{
		{Name: "library", Repository: "docker.io/library/*", Target: "registry.example.com/hub/{repository}"},
		{Name: "hub", Registry: "docker.io", Target: "registry.example.com/hub/{repository}"},
	}}
	if _, err := New(cfg); err != nil {
		t.Fatalf("New: %v; both rules only match docker.io, so they cannot collide", err)
	}
}

// TestEveryDecisionSaysWhy: explain, warnings and the mirror command show
// the last reason, so no decision may come without one.
func TestEveryDecisionSaysWhy(t *testing.T) {
	withoutLists := testConfig()
	withoutLists.Policies = config.Policies{}
	for _, cfg := range []*config.Config{testConfig(), withoutLists} {
		e := newTestEngine(t, cfg)
		for _, image := range corpus {
			for name, d := range map[string]Decision{"Decide": e.Decide(Subject{Image: image}), "Gate": e.Gate(Subject{Image: image})} {
				if len(d.Reasons) == 0 {
					t.Errorf("%s(%q): %s with no reason", name, image, d.Action)
				}
			}
		}
	}
}
