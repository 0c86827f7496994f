package policyapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/rules"
	"github.com/image-swapper/image-swapper/internal/scan"
)

// now is the tests' clock for statuses; the gate judges expiry by the
// real clock, so expired exceptions in tests expire in 2020 and the others
// in 2099.
var now = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func baseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("config.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const mirrorConfig = `
sourceRegistries: [docker.io]
targetRegistry: registry.example.com
policies:
  allowList: ["registry.example.com/*", "ghcr.io/org/*", "quay.io/prometheus/*"]
  denyList: ["docker.io/unknown/*"]
`

func local(ns, name string, spec ImagePolicySpec) ImagePolicy {
	return ImagePolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1}, Spec: spec}
}

func clusterPolicy(name string, spec ClusterImagePolicySpec) ClusterImagePolicy {
	return ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: spec}
}

func mergeOrFail(t testing.TB, cfg *config.Config, clusters ...ClusterImagePolicy) *Cluster {
	t.Helper()
	c, err := MergeCluster(cfg, clusters)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decide(e *engine.Engine, ns, image string) engine.Decision {
	return e.Decide(engine.Subject{Image: image, Context: rules.Context{Namespace: ns}})
}

func TestImagePolicyTightens(t *testing.T) {
	c := mergeOrFail(t, baseConfig(t, mirrorConfig))
	n := c.Namespace("team-a", []ImagePolicy{local("team-a", "strict", ImagePolicySpec{
		AllowList: []string{"docker.io/library/*", "ghcr.io/org/app"},
		DenyList:  []string{"docker.io/library/busybox"},
	})}, now)
	if o := n.Outcomes["strict"]; !o.Accepted {
		t.Fatalf("outcome %+v, want accepted", o)
	}
	cases := []struct {
		name   string
		ns     string
		image  string
		denied bool
		rule   string
	}{
		{"a swapped image the namespace allows passes", "team-a", "nginx:1.27", false, ""},
		{"the namespace's denyList denies in the namespace", "team-a", "busybox:1.36", true, `ImagePolicy/team-a/strict spec.denyList[0] "docker.io/library/busybox"`},
		{"the namespace's denyList does not deny elsewhere", "team-b", "busybox:1.36", false, ""},
		{"a swapped image the namespace does not allow is denied: swapping does not pass it", "team-a", "docker.io/bitnami/redis:7", true, "ImagePolicy/team-a/strict spec.allowList"},
		{"the same image passes in another namespace", "team-b", "docker.io/bitnami/redis:7", false, ""},
		{"an image both allowLists allow passes", "team-a", "ghcr.io/org/app:1", false, ""},
		{"the cluster allows ghcr.io/org/*, the namespace only ghcr.io/org/app", "team-a", "ghcr.io/org/other:1", true, "ImagePolicy/team-a/strict spec.allowList"},
		{"the namespace's allowList cannot allow what the cluster's does not", "team-a", "docker.io/library/nginx@sha256:" + strings.Repeat("a", 64), false, ""},
		{"the cluster's denyList still denies", "team-a", "docker.io/unknown/x:1", true, `policies.denyList[0] "docker.io/unknown/*"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := c.Engine()
			if tc.ns == "team-a" {
				e = n.Engine
			}
			d := decide(e, tc.ns, tc.image)
			if d.Denied() != tc.denied || tc.denied && d.Rule != tc.rule {
				t.Fatalf("%s in %s: %s by %q (%s); want denied %v by %q", tc.image, tc.ns, d.Action, d.Rule, d.LastReason(), tc.denied, tc.rule)
			}
		})
	}
}

func TestImagePolicyAllowListCannotWiden(t *testing.T) {
	c := mergeOrFail(t, baseConfig(t, mirrorConfig))
	n := c.Namespace("team-a", []ImagePolicy{local("team-a", "wide", ImagePolicySpec{AllowList: []string{"*"}})}, now)
	// quay.io/other is neither swapped nor in the cluster's allowList.
	if d := decide(n.Engine, "team-a", "quay.io/other/x:1"); !d.Denied() || d.Rule != "policies.allowList" {
		t.Fatalf("quay.io/other/x:1 with allowList [*] in the namespace: %s by %q; want denied by policies.allowList", d.Action, d.Rule)
	}
}

func TestImagePolicyAllowListNarrowsWithoutClusterAllowList(t *testing.T) {
	c := mergeOrFail(t, baseConfig(t, "sourceRegistries: [docker.io]\ntargetRegistry: registry.example.com\n"))
	n := c.Namespace("team-a", []ImagePolicy{
		local("team-a", "a", ImagePolicySpec{AllowList: []string{"docker.io/library/*", "ghcr.io/*"}}),
		local("team-a", "b", ImagePolicySpec{AllowList: []string{"docker.io/*"}}),
	}, now)
	for image, denied := range map[string]bool{
		"nginx":               false, // in both lists
		"ghcr.io/org/app:1":   true,  // not in b's
		"docker.io/bitnami/x": true,  // not in a's
	} {
		if d := decide(n.Engine, "team-a", image); d.Denied() != denied {
			t.Errorf("%s: %s (%s); want denied %v", image, d.Action, d.LastReason(), denied)
		}
		if d := decide(c.Engine(), "team-a", image); d.Denied() {
			t.Errorf("%s is denied by the cluster's policy alone: %s", image, d.LastReason())
		}
	}
}

func TestImagePolicyModeIsAFloor(t *testing.T) {
	cfg := baseConfig(t, `
mode: audit
policies:
  denyList: ["docker.io/unknown/*"]
rules:
  - name: no-debug
    repository: "docker.io/debug/*"
    action: deny
    mode: warn
`)
	c := mergeOrFail(t, cfg)
	cases := []struct {
		name  string
		mode  config.Mode
		image string
		want  config.Mode
	}{
		{"enforce raises an audited list verdict", config.ModeEnforce, "docker.io/unknown/x", config.ModeEnforce},
		{"enforce raises a rule's warn", config.ModeEnforce, "docker.io/debug/x", config.ModeEnforce},
		{"warn raises audit", config.ModeWarn, "docker.io/unknown/x", config.ModeWarn},
		{"audit lowers nothing", config.ModeAudit, "docker.io/debug/x", config.ModeWarn},
		{"no mode keeps the configuration's", "", "docker.io/unknown/x", config.ModeAudit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := c.Namespace("team-a", []ImagePolicy{local("team-a", "p", ImagePolicySpec{Mode: tc.mode})}, now)
			d := decide(n.Engine, "team-a", tc.image)
			if len(d.Violations) != 1 || d.Violations[0].Mode != tc.want {
				t.Fatalf("violations %+v; want one in %s mode", d.Violations, tc.want)
			}
			if tc.mode != "" && n.ModeFrom != "ImagePolicy/team-a/p" {
				t.Errorf("ModeFrom = %q", n.ModeFrom)
			}
		})
	}
	// The configuration's stricter modes stay when an ImagePolicy is milder.
	strict := mergeOrFail(t, baseConfig(t, "policies:\n  denyList: [\"docker.io/unknown/*\"]\n"))
	n := strict.Namespace("team-a", []ImagePolicy{local("team-a", "p", ImagePolicySpec{Mode: config.ModeAudit})}, now)
	if d := decide(n.Engine, "team-a", "docker.io/unknown/x"); !d.Denied() {
		t.Fatalf("mode audit in an ImagePolicy admitted what the configuration enforces: %s", d.LastReason())
	}
}

func TestImagePolicySwapPolicy(t *testing.T) {
	c := mergeOrFail(t, baseConfig(t, mirrorConfig))
	n := c.Namespace("team-a", []ImagePolicy{
		local("team-a", "b", ImagePolicySpec{Swap: config.SwapExists}),
		local("team-a", "a", ImagePolicySpec{Swap: config.SwapWait}),
	}, now)
	if got := n.Engine.Config().SwapPolicy(); got != config.SwapWait {
		t.Errorf("swap policy %s; want wait, from a (first by name)", got)
	}
	if n.SwapFrom != "ImagePolicy/team-a/a" {
		t.Errorf("SwapFrom = %q", n.SwapFrom)
	}
	if o := n.Outcomes["b"]; !o.Accepted || !strings.Contains(o.Message, "spec.swap exists is not used") {
		t.Errorf("b's outcome %+v; want accepted, saying its swap is not used", o)
	}
	// always swaps to what the mirror may not have yet, which the allow
	// list judges as a mirror: looser than the cluster's exists, refused.
	loose := c.Namespace("team-a", []ImagePolicy{local("team-a", "a", ImagePolicySpec{Swap: config.SwapAlways})}, now)
	if got := loose.Engine.Config().SwapPolicy(); got != config.SwapExists {
		t.Errorf("an ImagePolicy's swap: always gave the namespace %s; want the cluster's exists", got)
	}
	if o := loose.Outcomes["a"]; !strings.Contains(o.Message, "spec.swap always is not used") {
		t.Errorf("a's outcome %+v; want it to say swap: always is not used", o)
	}
	if got := c.Engine().Config().SwapPolicy(); got != config.SwapExists {
		t.Errorf("the cluster's swap policy became %s", got)
	}
}

// findings serves one failing finding for every image.
type findings struct{ id string }

func (f findings) Lookup(_ context.Context, image reference.Reference, _ authn.Keychain) scan.ImageScan {
	return scan.ImageScan{Ref: image, Scanned: []scan.PlatformScan{{
		Digest: "sha256:" + strings.Repeat("b", 64), Platform: "linux/amd64",
		Findings: []scan.Finding{{ID: f.id, Package: "openssl", Installed: "3.0.0", Fixed: "3.0.1", Severity: scan.SeverityCritical}},
	}}}
}

const scanningConfig = `
security:
  scanning: {enabled: true, provider: trivy, failOnCritical: true}
`

func scanDecision(e *engine.Engine, ns, image string, f findings) engine.Decision {
	s := engine.Subject{Image: image, Context: rules.Context{Namespace: ns}}
	d := e.Gate(s)
	e.Scan(context.Background(), &d, s, f)
	return d
}

func TestExceptionsNeedAClusterPolicyThatAllowsThem(t *testing.T) {
	exceptions := ImagePolicySpec{Exceptions: []Exception{
		{ID: "CVE-2027-0001", Expires: "2099-12-31", Reason: "TICKET-1: not reachable"},
		{ID: "CVE-2020-0002", Expires: "2020-01-31", Reason: "TICKET-2"},
	}}
	f := findings{id: "CVE-2027-0001"}
	cfg := baseConfig(t, scanningConfig)

	t.Run("without allowNamespaceExceptions they are ignored and the status says so", func(t *testing.T) {
		c := mergeOrFail(t, cfg, clusterPolicy("base", ClusterImagePolicySpec{}))
		n := c.Namespace("team-a", []ImagePolicy{local("team-a", "x", exceptions)}, now)
		o := n.Outcomes["x"]
		if !o.Accepted || !o.Exceptions || o.ExceptionsAccepted || o.ExceptionsReason != ReasonNamespaceExceptionsNotAllowed {
			t.Fatalf("outcome %+v; want accepted with exceptions refused (%s)", o, ReasonNamespaceExceptionsNotAllowed)
		}
		if d := scanDecision(n.Engine, "team-a", "ghcr.io/org/app:1", f); !d.Denied() {
			t.Fatalf("a refused exception applied: %s", d.LastReason())
		}
	})
	t.Run("with allowNamespaceExceptions they apply in their namespace only", func(t *testing.T) {
		c := mergeOrFail(t, cfg, clusterPolicy("exceptions", ClusterImagePolicySpec{AllowNamespaceExceptions: true}))
		n := c.Namespace("team-a", []ImagePolicy{local("team-a", "x", exceptions)}, now)
		o := n.Outcomes["x"]
		if !o.ExceptionsAccepted || o.ExceptionsReason != ReasonAllowedByClusterPolicy || !strings.Contains(o.ExceptionsMessage, "ClusterImagePolicy/exceptions") {
			t.Fatalf("outcome %+v; want exceptions accepted, naming the ClusterImagePolicy", o)
		}
		if !strings.Contains(o.ExceptionsMessage, "spec.exceptions[1] (CVE-2020-0002) expired on 2020-01-31") {
			t.Errorf("exceptions message %q does not name the expired exception", o.ExceptionsMessage)
		}
		if d := scanDecision(n.Engine, "team-a", "ghcr.io/org/app:1", f); d.Denied() {
			t.Fatalf("the exception did not apply in its namespace: %s", d.LastReason())
		}
		// The engine of another namespace with the same ImagePolicy
		// object copied in still scopes the entry to team-a.
		if d := scanDecision(n.Engine, "team-b", "ghcr.io/org/app:1", f); !d.Denied() {
			t.Fatalf("team-a's exception applied in team-b: %s", d.LastReason())
		}
	})
	t.Run("an expired exception never applies", func(t *testing.T) {
		c := mergeOrFail(t, cfg, clusterPolicy("exceptions", ClusterImagePolicySpec{AllowNamespaceExceptions: true}))
		n := c.Namespace("team-a", []ImagePolicy{local("team-a", "x", exceptions)}, now)
		if d := scanDecision(n.Engine, "team-a", "ghcr.io/org/app:1", findings{id: "CVE-2020-0002"}); !d.Denied() {
			t.Fatalf("an expired exception applied: %s", d.LastReason())
		}
		old := c.Namespace("team-a", []ImagePolicy{local("team-a", "x", ImagePolicySpec{Exceptions: exceptions.Exceptions[1:]})}, now)
		if o := old.Outcomes["x"]; o.ExceptionsAccepted || o.ExceptionsReason != ReasonExpired {
			t.Errorf("outcome %+v; want exceptions not accepted, reason %s", o, ReasonExpired)
		}
	})
}

func TestInvalidImagePoliciesAreLeftOut(t *testing.T) {
	c := mergeOrFail(t, baseConfig(t, mirrorConfig))
	cases := []struct {
		name string
		spec ImagePolicySpec
		want string
	}{
		{"a pattern with whitespace", ImagePolicySpec{DenyList: []string{"docker.io/a b"}}, "spec.denyList[0]"},
		{"an unknown mode", ImagePolicySpec{Mode: "strict"}, "spec.mode"},
		{"an unknown swap policy", ImagePolicySpec{Swap: "never"}, "spec.swap"},
		{"an exception without expiry", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-1", Reason: "r"}}}, "spec.exceptions[0].expires: required"},
		{"an exception without a reason", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-1", Expires: "2099-01-01"}}}, "spec.exceptions[0].reason: required"},
		{"an exception with a bad date", ImagePolicySpec{Exceptions: []Exception{{ID: "CVE-1", Expires: "2099-02-30", Reason: "r"}}}, "spec.exceptions[0].expires"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := c.Namespace("team-a", []ImagePolicy{
				local("team-a", "bad", tc.spec),
				local("team-a", "good", ImagePolicySpec{DenyList: []string{"docker.io/library/busybox"}}),
			}, now)
			o := n.Outcomes["bad"]
			if o.Accepted || o.Reason != ReasonInvalid || !strings.Contains(o.Message, tc.want) {
				t.Fatalf("outcome %+v; want invalid, naming %s", o, tc.want)
			}
			if d := decide(n.Engine, "team-a", "busybox"); !d.Denied() {
				t.Errorf("the valid ImagePolicy beside it does not apply: %s", d.LastReason())
			}
		})
	}
}

func TestClusterImagePolicyMerges(t *testing.T) {
	maxCVSS := 7.0
	cfg := baseConfig(t, mirrorConfig+`
mode: warn
security:
  scanning: {enabled: true, provider: trivy, severity: CRITICAL}
rules:
  - name: keep-internal
    registry: internal.example.com
    action: keep
`)
	c := mergeOrFail(t, cfg,
		clusterPolicy("b-security", ClusterImagePolicySpec{
			Policies: config.Policies{DenyList: []string{"*:debug"}, Mode: config.ModeEnforce},
			Rules:    []config.Rule{{Repository: "docker.io/evil/*", Action: config.ActionDeny, Message: "no evil"}},
			Security: SecurityPolicy{Scanning: ScanningPolicy{Severity: "HIGH", MaxCVSS: &maxCVSS, SkipImages: []string{"ghcr.io/org/scanner"}}},
		}),
		clusterPolicy("a-bad", ClusterImagePolicySpec{
			Rules: []config.Rule{{Image: "nginx", Repository: "docker.io/x/*", Action: config.ActionKeep}},
		}),
	)
	if o := c.Outcomes["a-bad"]; o.Accepted || o.Reason != ReasonInvalid || !strings.Contains(o.Message, "spec.rules[0]: sets image and repository") {
		t.Errorf("a-bad outcome %+v; want invalid, naming spec.rules[0]", o)
	}
	if o := c.Outcomes["b-security"]; !o.Accepted {
		t.Fatalf("b-security outcome %+v; want accepted", o)
	}
	d := decide(c.Engine(), "team-a", "nginx:debug")
	if !d.Denied() || d.Rule != `ClusterImagePolicy/b-security spec.policies.denyList[0] "*:debug"` {
		t.Errorf("nginx:debug: %s by %q; want denied by b-security's denyList in enforce mode (stricter than warn)", d.Action, d.Rule)
	}
	if got := DecidedBy(d.Rule); got != "ClusterImagePolicy/b-security" {
		t.Errorf("DecidedBy(%q) = %q", d.Rule, got)
	}
	d = decide(c.Engine(), "team-a", "docker.io/evil/x:1")
	if len(d.Violations) != 1 || d.Violations[0].Rule != "ClusterImagePolicy/b-security spec.rules[0]" || !strings.Contains(d.Violations[0].Message, "no evil") {
		t.Errorf("docker.io/evil/x:1: violations %+v; want the ClusterImagePolicy's rule", d.Violations)
	}
	s := c.Engine().Config().Security.Scanning
	if s.Severity != "HIGH" || s.MaxCVSS == nil || *s.MaxCVSS != 7 || len(s.SkipImages) != 1 || s.Provider != "trivy" {
		t.Errorf("merged scanning %+v; want severity HIGH, maxCVSS 7, one skipImages entry, the file's provider", s)
	}
	if cfg.Security.Scanning.Severity != "CRITICAL" || len(cfg.Rules) != 1 {
		t.Error("merging changed the configuration it started from")
	}
}

func TestNextStatus(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	refused := Outcome{Accepted: true, Reason: ReasonValid, Message: "merged", Exceptions: true, ExceptionsReason: ReasonNamespaceExceptionsNotAllowed, ExceptionsMessage: "ignored"}
	s, changed := NextStatus(Status{}, refused, 3, t0)
	if !changed || s.ObservedGeneration != 3 || len(s.Conditions) != 3 {
		t.Fatalf("status %+v (changed %v); want 3 conditions at generation 3", s, changed)
	}
	for _, c := range s.Conditions {
		if c.ObservedGeneration != 3 {
			t.Errorf("condition %s at generation %d", c.Type, c.ObservedGeneration)
		}
		if c.Type == ConditionExceptionsAccepted && (c.Status != metav1.ConditionFalse || c.Reason != ReasonNamespaceExceptionsNotAllowed) {
			t.Errorf("condition %+v; want False, %s", c, ReasonNamespaceExceptionsNotAllowed)
		}
	}
	if _, changed := NextStatus(s, refused, 3, t1); changed {
		t.Error("the same outcome changed the status: replicas would write it over and over")
	}
	s2, changed := NextStatus(s, Outcome{Accepted: true, Reason: ReasonValid, Message: "merged"}, 4, t1)
	if !changed || len(s2.Conditions) != 2 {
		t.Errorf("without exceptions: %+v; want Accepted and Ready only", s2.Conditions)
	}
	for _, c := range s2.Conditions {
		if !c.LastTransitionTime.Equal(&t0) {
			t.Errorf("condition %s moved its lastTransitionTime without changing status", c.Type)
		}
	}
}
