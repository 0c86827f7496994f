package engine

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// prewarmConfig swaps only in namespaces labelled enable-mirroring=true,
// as the product's example does, with scoped and unscoped rules of every
// action around the source registries.
func prewarmConfig() *config.Config {
	prod := &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
	return &config.Config{
		SourceRegistries: []string{"docker.io", "quay.io", "ghcr.io"},
		TargetRegistry:   "registry.example.com",
		Mirroring: config.Mirroring{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"enable-mirroring": "true"}},
			Condition:         `"team" in object.labels`,
		},
		Policies: config.Policies{
			AllowList: []string{"registry.example.com/*"},
			DenyList:  []string{"docker.io/unknown/*", "registry.example.com/docker.io/banned/*"},
		},
		Rules: []config.Rule{
			{Name: "prod-nginx", Image: "nginx:1.27", Target: "{target}/prod/nginx:1.27", NamespaceSelector: prod},
			{Name: "keep-ours", Repository: "docker.io/ours/*", Action: config.ActionKeep},
			{Name: "keep-canary", Repository: "quay.io/canary/*", Action: config.ActionKeep, Condition: `object.labels["track"] == "canary"`},
			{Name: "no-evil", Repository: "docker.io/evil/*", Action: config.ActionDeny},
			{Name: "evil-in-prod", Repository: "ghcr.io/evil/*", Action: config.ActionDeny, NamespaceSelector: prod},
			{Name: "warn-old", Repository: "quay.io/old/*", Action: config.ActionDeny, Mode: config.ModeWarn},
		},
	}
}

func TestPrewarm(t *testing.T) {
	e := newTestEngine(t, prewarmConfig())
	cases := []struct {
		name    string
		image   string
		targets []string // the swap targets, in order; none: not copied
		action  config.Action
		because string // with no targets: a substring of a reason
	}{
		{"a namespace selector on mirroring is taken as satisfiable", "quay.io/a/b:1",
			[]string{"registry.example.com/quay.io/a/b:1"}, "", ""},
		{"a scoped swap rule and the rule after it both give targets", "nginx:1.27",
			[]string{"registry.example.com/prod/nginx:1.27", "registry.example.com/docker.io/library/nginx:1.27"}, "", ""},
		{"an unscoped keep rule keeps it everywhere", "docker.io/ours/app:1",
			nil, config.ActionKeep, "kept by rule keep-ours"},
		{"a keep rule under a condition is passed over", "quay.io/canary/app:1",
			[]string{"registry.example.com/quay.io/canary/app:1"}, "", ""},
		{"an unscoped enforcing deny rule denies it everywhere", "docker.io/evil/x:1",
			nil, config.ActionDeny, "denied by rule no-evil"},
		{"a deny rule for some namespaces leaves the others swapping", "ghcr.io/evil/x:1",
			[]string{"registry.example.com/ghcr.io/evil/x:1"}, "", ""},
		{"a deny rule in warn mode does not stop the copy", "quay.io/old/x:1",
			[]string{"registry.example.com/quay.io/old/x:1"}, "", ""},
		{"the deny list refuses the source", "docker.io/unknown/x:1",
			nil, config.ActionDeny, "denyList"},
		{"the deny list refuses the target", "docker.io/banned/x:1",
			nil, config.ActionDeny, "registry.example.com/docker.io/banned/*"},
		{"an image of no source registry is not copied", "registry.k8s.io/pause:3.10",
			nil, config.ActionKeep, "no swap rule matches"},
		{"a mirror image is not copied again", "registry.example.com/docker.io/library/nginx:1.27",
			nil, config.ActionKeep, "already a target"},
		{"an invalid reference is denied", "nginx@sha256:tooshort",
			nil, config.ActionDeny, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.Prewarm(Subject{Image: c.image, Context: rules.Context{Object: rules.Object{Kind: "Pod"}}})
			var targets []string
			for _, d := range got {
				if d.Action == config.ActionSwap {
					targets = append(targets, d.Target)
				}
			}
			if !slices.Equal(targets, c.targets) {
				t.Fatalf("targets %q, want %q; decisions %+v", targets, c.targets, got)
			}
			if c.targets != nil {
				return
			}
			if len(got) != 1 || got[0].Action != c.action {
				t.Fatalf("decisions %+v, want one %s", got, c.action)
			}
			if c.because != "" && !strings.Contains(strings.Join(got[0].Reasons, "\n"), c.because) {
				t.Errorf("reasons do not say %q:\n%s", c.because, strings.Join(got[0].Reasons, "\n"))
			}
		})
	}
}

// TestPrewarmRespectsMirroringEnabled: with swapping off, nothing is
// pre-warmed, whatever the scopes.
func TestPrewarmRespectsMirroringEnabled(t *testing.T) {
	cfg := prewarmConfig()
	off := false
	cfg.Mirroring.Enabled = &off
	got := newTestEngine(t, cfg).Prewarm(Subject{Image: "quay.io/a/b:1"})
	if len(got) != 1 || got[0].Action == config.ActionSwap || !strings.Contains(strings.Join(got[0].Reasons, "\n"), "mirroring.enabled is false") {
		t.Fatalf("decisions %+v, want one that is not a swap because mirroring is off", got)
	}
}

// TestDecideWithoutNamespaceStillJudgesSelectors: Prewarm is an addition;
// Decide (rewrite, explain, mirror --namespace) keeps evaluating scopes
// against the namespace it is given.
func TestDecideWithoutNamespaceStillJudgesSelectors(t *testing.T) {
	e := newTestEngine(t, prewarmConfig())
	d := e.Decide(Subject{Image: "quay.io/a/b:1"})
	if d.Action == config.ActionSwap {
		t.Fatalf("Decide swapped outside a labelled namespace: %+v", d)
	}
	d = e.Decide(Subject{Image: "quay.io/a/b:1", Context: rules.Context{Namespace: "shop", NamespaceLabels: map[string]string{"enable-mirroring": "true"},
		Object: rules.Object{Kind: "Pod", Labels: map[string]string{"team": "shop"}}}})
	if d.Action != config.ActionSwap {
		t.Fatalf("Decide did not swap in a labelled namespace: %+v", d)
	}
}
