package engine

import (
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

var (
	digestA = "sha256:" + strings.Repeat("a1", 32)
	digestB = "sha256:" + strings.Repeat("0f", 32)
)

// Issue 7.1: a deny entry that names a tag was escaped by adding a digest.
func TestDenyListHoldsWhenADigestIsAdded(t *testing.T) {
	cfg := &config.Config{
		SourceRegistries: []string{"docker.io"},
		TargetRegistry:   "registry.example.com",
		Policies:         config.Policies{DenyList: []string{"nginx:1.19", "*:latest"}},
	}
	e := newTestEngine(t, cfg)
	for _, image := range []string{
		"nginx:1.19", "nginx:1.19@" + digestA, "docker.io/library/nginx:1.19@" + digestA,
		"index.docker.io/library/nginx:1.19@" + digestA, "registry-1.docker.io/library/nginx:1.19",
		"Docker.IO/library/nginx:1.19", "docker.io:443/library/nginx:1.19",
		"nginx:latest@" + digestA, "nginx", "quay.io/a/b:latest@" + digestB,
		"nginx:1.19@SHA256:" + strings.Repeat("a1", 32),
	} {
		for name, d := range map[string]Decision{"Decide": e.Decide(Subject{Image: image}), "Gate": e.Gate(Subject{Image: image})} {
			if !d.Denied() {
				t.Errorf("%s(%q) = %s %q (%s), want denied", name, image, d.Action, d.Target, d.LastReason())
			}
		}
	}
	for _, image := range []string{"nginx:1.27", "nginx:1.27@" + digestA, "nginx@" + digestA} {
		if d := e.Decide(Subject{Image: image}); d.Denied() {
			t.Errorf("Decide(%q) denied (%s); the entries name other tags", image, d.LastReason())
		}
	}
}

// spellings are ways of writing one image that a runtime pulls alike:
// with or without a digest, and with the registry spelled differently.
func spellings(t *testing.T, image string) []string {
	t.Helper()
	ref, err := reference.Parse(image)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{ref.Registry, strings.ToUpper(ref.Registry)}
	if !strings.Contains(ref.Registry, ":") {
		hosts = append(hosts, ref.Registry+":443")
	}
	if ref.Registry == reference.DefaultRegistry {
		hosts = append(hosts, "index.docker.io", "registry-1.docker.io", "")
	}
	var out []string
	for _, h := range hosts {
		name := ref.Repository
		if h != "" {
			name = h + "/" + name
		} else {
			name = strings.TrimPrefix(name, "library/")
		}
		out = append(out, name+":"+ref.Tag, name+":"+ref.Tag+"@"+digestA, name+":"+ref.Tag+"@"+digestB)
		if ref.Tag == reference.DefaultTag {
			out = append(out, name) // no tag means :latest
		}
	}
	return out
}

// TestNoSpellingTurnsADenyIntoAnAllow is the property of issue 7.1 over
// the reference corpus: for deny entries naming each image by repository,
// by tag, or by wildcard, every spelling of the image is denied, and so is
// its mirror's name.
func TestNoSpellingTurnsADenyIntoAnAllow(t *testing.T) {
	checked := 0
	for _, image := range corpus {
		ref, err := reference.Parse(image)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Tag == "" {
			ref.Tag = "latest"
		}
		patterns := []string{ref.Name(), ref.Name() + ":" + ref.Tag, ref.Name() + ":*", "*/" + lastComponent(ref.Repository) + ":" + ref.Tag, "*:" + ref.Tag}
		for _, pattern := range patterns {
			cfg := &config.Config{
				SourceRegistries: []string{"*"},
				TargetRegistry:   "mirror.example.com",
				Policies:         config.Policies{DenyList: []string{pattern}},
			}
			e := newTestEngine(t, cfg)
			mirrored := e.Decide(Subject{Image: ref.Name() + ":" + ref.Tag + "@" + digestA})
			for _, s := range append(spellings(t, ref.Name()+":"+ref.Tag), mirrored.Target) {
				if s == "" {
					continue
				}
				checked++
				if d := e.Decide(Subject{Image: s}); !d.Denied() {
					t.Errorf("denyList [%q]: Decide(%q) = %s (%s), want denied", pattern, s, d.Action, d.LastReason())
				}
				if d := e.Gate(Subject{Image: s}); !d.Denied() {
					t.Errorf("denyList [%q]: Gate(%q) = %s (%s), want denied", pattern, s, d.Action, d.LastReason())
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d spellings checked; the property tested too little", checked)
	}
}

func lastComponent(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

// FuzzDenyIsSpellingInvariant fuzzes the policy decision: whatever the
// pattern and image, if the image is denied, adding a digest, spelling the
// registry differently or the digest algorithm in capitals does not admit
// it; and for a pattern without wildcards or '@', removing the digest does
// not either.
func FuzzDenyIsSpellingInvariant(f *testing.F) {
	f.Add("nginx:1.19", "nginx:1.19")
	f.Add("*:latest", "nginx")
	f.Add("docker.io/library/*", "index.docker.io/library/redis:7@"+digestA)
	f.Add("quay.io/team/*", "QUAY.IO:443/team/app:1")
	f.Add("localhost:5000/x", "localhost:5000/x:1@"+digestB)
	f.Fuzz(func(t *testing.T, pattern, image string) {
		cfg := &config.Config{
			SourceRegistries: []string{"docker.io", "quay.io"},
			TargetRegistry:   "mirror.example.com",
			Policies:         config.Policies{DenyList: []string{pattern}},
		}
		e, err := New(cfg)
		if err != nil {
			return // the pattern does not compile: the config is refused
		}
		ref, err := reference.Parse(image)
		if err != nil {
			return
		}
		denied := func(image string) bool { return e.Decide(Subject{Image: image}).Denied() }
		withDigest, bare, upper := ref, ref, ref
		if withDigest.Digest == "" {
			withDigest.Digest = digestA
		}
		bare.Digest = ""
		if bare.Tag == "" {
			bare.Tag = "latest"
		}
		upper.Registry = strings.ToUpper(upper.Registry)
		var variants []string
		if denied(image) {
			variants = append(variants, withDigest.String(), upper.String(), strings.Replace(withDigest.String(), "@sha256:", "@SHA256:", 1))
			if !strings.ContainsAny(pattern, "*?@") {
				variants = append(variants, bare.String())
			}
		}
		if denied(bare.String()) {
			variants = append(variants, withDigest.String())
		}
		for _, v := range variants {
			if d := e.Decide(Subject{Image: v}); !d.Denied() {
				t.Fatalf("denyList [%q]: %q or %q is denied but %q is %s (%s)", pattern, image, bare, v, d.Action, d.LastReason())
			}
		}
	})
}

// Issue 7.2: an image that only starts like a rule's targets was taken for
// one of its products, kept and let past the allowList.
func TestOnlyTrueProductsAreTakenForTargets(t *testing.T) {
	cfg := &config.Config{
		SourceRegistries: []string{"docker.io"},
		TargetRegistry:   "registry.example.com",
		Policies:         config.Policies{AllowList: []string{"registry.example.com/*"}, DenyList: []string{"docker.io/unknown/*"}},
		Rules: []config.Rule{
			{Name: "team-a", Repository: "docker.io/team-a/*", Target: "registry2.example.com/team-a{suffix}"},
		},
	}
	e := newTestEngine(t, cfg)
	cases := []struct {
		name, image string
		denied      bool
	}{
		{"a name that only starts like the rule's targets is judged as itself", "registry2.example.com/team-abc/evil:1", true},
		{"a registry no rule swaps from is no product of the default rule", "registry.example.com/evil.io/x:1", false},
		{"the mirror of a denied image is denied", "registry.example.com/docker.io/unknown/x:1", true},
		{"a true product of the rule is kept and passes", "registry2.example.com/team-aapp:1", false},
		{"a true product of the default rule is kept and passes", "registry.example.com/docker.io/library/nginx:1.27", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, d := range map[string]Decision{"Decide": e.Decide(Subject{Image: c.image}), "Gate": e.Gate(Subject{Image: c.image})} {
				if d.Denied() != c.denied || d.Action == config.ActionSwap {
					t.Errorf("%s(%q) = %s (%s); want denied %v and never swapped", name, c.image, d.Action, d.LastReason(), c.denied)
				}
			}
		})
	}

	// An image merely under the target registry is judged as itself too.
	strict := &config.Config{
		SourceRegistries: []string{"docker.io"},
		TargetRegistry:   "registry.example.com",
		Policies:         config.Policies{AllowList: []string{"docker.io/library/*"}},
	}
	e = newTestEngine(t, strict)
	if d := e.Decide(Subject{Image: "registry.example.com/evil.io/x:1"}); !d.Denied() {
		t.Errorf("registry.example.com/evil.io/x:1 = %s (%s); it is no product of any rule and not allowed", d.Action, d.LastReason())
	}
	if d := e.Gate(Subject{Image: "registry.example.com/docker.io/library/nginx:1.27"}); d.Denied() {
		t.Errorf("the mirror of an allowed image was denied: %s", d.LastReason())
	}
}

// Issue 7.3: rules whose templates differ in text but not in what they
// produce were accepted.
func TestCollidingTargetsAreRefused(t *testing.T) {
	cases := []struct {
		name  string
		rules []config.Rule
		want  string
	}{
		{"a {target} template and a literal one", []config.Rule{
			{Name: "ghcr", Registry: "ghcr.io", Target: "{target}/{repository}"},
			{Name: "quay", Registry: "quay.io", Target: "registry.example.com/{repository}"},
		}, "ghcr and quay: both send images to one target: ghcr.io/zz/q:1 (by ghcr) and quay.io/zz/q:1 (by quay) would both become registry.example.com/zz/q:1"},
		{"repository rules with different {suffix} templates", []config.Rule{
			{Name: "hub", Repository: "docker.io/a*", Target: "{target}/x{suffix}"},
			{Name: "quay", Repository: "quay.io/ab*", Target: "{target}/xb{suffix}"},
		}, "hub and quay: both send images to one target"},
		{"a registry kept in the path meets a literal path", []config.Rule{
			{Name: "any", Registry: "*.example.org", Target: "{target}/{registry}/{repository}"},
			{Name: "ghcr", Registry: "ghcr.io", Target: "{target}/{repository}"},
		}, "any and ghcr: both send images to one target"},
		{"an exact image meets a registry rule", []config.Rule{
			{Name: "pin", Image: "nginx:1.27", Target: "registry.example.com/nginx:stable"},
			{Name: "quay", Registry: "quay.io", Target: "{target}/{repository}"},
		}, "pin and quay: both send images to one target: docker.io/library/nginx:1.27 (by pin) and quay.io/nginx:stable (by quay) would both become registry.example.com/nginx:stable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(&config.Config{TargetRegistry: "registry.example.com", Rules: c.rules})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v; want an error containing %q", err, c.want)
			}
		})
	}
	// Rules that only look alike are accepted.
	ok := []config.Rule{
		{Name: "hub", Registry: "docker.io", Target: "{target}/hub/{repository}"},
		{Name: "quay", Registry: "quay.io", Target: "{target}/quay/{repository}"},
		{Name: "library", Repository: "docker.io/library/*", Target: "{target}/hub/library/{suffix}"},
	}
	if _, err := New(&config.Config{TargetRegistry: "registry.example.com", SourceRegistries: []string{"ghcr.io"}, Rules: ok}); err != nil {
		t.Fatalf("New: %v; these rules never meet", err)
	}
}

// FuzzTargetsInvertToTheirSource checks the inverse that "already a
// target" rests on: each swap target is recognised as the product of
// exactly the image it came from.
func FuzzTargetsInvertToTheirSource(f *testing.F) {
	for _, image := range corpus {
		f.Add(image)
	}
	f.Add("registry.example.com/evil.io/x:1")
	f.Add("registry.example.com/0000_0000_0000_0000_0000_0000_0000_0001_5000/team/app:1")
	e, err := New(testConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, image string) {
		d := e.Decide(Subject{Image: image})
		if d.Action != config.ActionSwap {
			return
		}
		target, err := reference.Parse(d.Target)
		if err != nil {
			t.Fatalf("Decide(%q) swapped to %q, which does not parse: %v", image, d.Target, err)
		}
		rule, src, ok := e.rules.ProducedFrom(target)
		if !ok {
			t.Fatalf("Decide(%q) swapped to %q, which no rule is taken to produce", image, d.Target)
		}
		if src.String() != d.Normalized {
			t.Fatalf("%q is taken for the product of %q by rule %s, but came from %q", d.Target, src, rule, d.Normalized)
		}
	})
}

// Writing a mirror's name directly meets the deny rules of its source.
func TestTheMirrorOfAnImageMeetsItsDenyRules(t *testing.T) {
	e := newTestEngine(t, testConfig())
	for _, image := range []string{"registry.example.com/docker.io/evil/miner:1", "registry.example.com/docker.io/unknown/thing:2"} {
		for name, d := range map[string]Decision{"Decide": e.Decide(Subject{Image: image}), "Gate": e.Gate(Subject{Image: image})} {
			if !d.Denied() {
				t.Errorf("%s(%q) = %s (%s); want denied as the mirror of a denied image", name, image, d.Action, d.LastReason())
			}
		}
	}
}

// The issue's own example: registry2.example.com/team-abc/evil:1 is a
// real product of a "team-a{suffix}" rule, the mirror of
// registry.example.com/team1bc/evil:1, and is judged as that image.
func TestAProductOfASuffixRuleIsJudgedAsItsSource(t *testing.T) {
	cfg := &config.Config{
		TargetRegistry: "mirror.example.com",
		Policies: config.Policies{
			AllowList: []string{"registry.example.com/*"},
			DenyList:  []string{"registry.example.com/team1bc/*"},
		},
		Rules: []config.Rule{{Name: "team-a", Repository: "registry.example.com/team1*", Target: "registry2.example.com/team-a{suffix}"}},
	}
	e := newTestEngine(t, cfg)
	d := e.Gate(Subject{Image: "registry2.example.com/team-abc/evil:1"})
	if !d.Denied() || !strings.Contains(strings.Join(d.Reasons, "\n"), "the mirror of registry.example.com/team1bc/evil:1") {
		t.Fatalf("Gate = %s, reasons %q; want denied as the mirror of registry.example.com/team1bc/evil:1", d.Action, d.Reasons)
	}
	if d := e.Gate(Subject{Image: "registry2.example.com/team-a/api:2"}); d.Denied() {
		t.Fatalf("the mirror of an allowed image was denied: %s", d.LastReason())
	}
}
