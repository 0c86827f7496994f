package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// designExample is the configuration of the design's "Configuration"
// section, byte for byte.
const designExample = `sourceRegistries: [docker.io, quay.io]
targetRegistry: registry.example.com
mirroring:
  enabled: true
  namespaceSelector: {matchLabels: {enable-mirroring: "true"}}
security:
  scanning: {enabled: true, provider: trivy, failOnCritical: true}
policies:
  allowList: ["registry.example.com/*"]
  denyList: ["docker.io/unknown/*"]
`

func TestParseLoadsTheDesignExampleVerbatim(t *testing.T) {
	cfg, err := Parse("config.yaml", []byte(designExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	enabled := true
	want := &Config{
		SourceRegistries: []string{"docker.io", "quay.io"},
		TargetRegistry:   "registry.example.com",
		Mirroring: Mirroring{
			Enabled:           &enabled,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"enable-mirroring": "true"}},
		},
		Security: Security{Scanning: Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true}},
		Policies: Policies{
			AllowList: []string{"registry.example.com/*"},
			DenyList:  []string{"docker.io/unknown/*"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse(design example) =\n%#v\nwant\n%#v", cfg, want)
	}
}

func TestParseDecodesEveryKey(t *testing.T) {
	const doc = `sourceRegistries: ["*.gcr.io", localhost:5000]
targetRegistry: registry.example.com:5000/mirror
mode: warn
mirroring:
  enabled: false
  namespaceSelector:
    matchExpressions:
      - {key: team, operator: In, values: [a, b]}
  objectSelector:
    matchLabels:
      app.kubernetes.io/name: web
      release: 1.10
      canary: true
      empty:
  condition: namespace.name != "dev"
  swap: wait
  waitBudget: 1500ms
  pinDigest: true
security:
  scanning: {enabled: true, provider: grype}
policies:
  allowList: []
  denyList: ["docker.io/unknown/*"]
  mode: audit
rules:
  - name: pin
    image: nginx:1.27
    target: registry.example.com/pinned/nginx:1.27
  - repository: "docker.io/bitnami/*"
    action: keep
  - registry: ghcr.io
    action: deny
    mode: warn
    message: ask the platform team
namespaces:
  exclude: [sandbox-*]
  include: [kube-system]
workloads:
  custom:
    - kind: SparkApplication
      apiVersion: sparkoperator\.k8s\.io/.*
      images: ["{.spec.image}"]
`
	cfg, err := Parse("config.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.SwapEnabled() {
		t.Error("SwapEnabled() = true, want false for enabled: false")
	}
	if got := cfg.WaitBudget(); got != 1500*time.Millisecond {
		t.Errorf("WaitBudget() = %v, want 1.5s", got)
	}
	wantLabels := map[string]string{"app.kubernetes.io/name": "web", "release": "1.10", "canary": "true", "empty": ""}
	if got := cfg.Mirroring.ObjectSelector.MatchLabels; !reflect.DeepEqual(got, wantLabels) {
		t.Errorf("objectSelector.matchLabels = %v, want %v (label values are taken as written)", got, wantLabels)
	}
	wantExpr := []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}
	if got := cfg.Mirroring.NamespaceSelector.MatchExpressions; !reflect.DeepEqual(got, wantExpr) {
		t.Errorf("namespaceSelector.matchExpressions = %v, want %v", got, wantExpr)
	}
	if len(cfg.Rules) != 3 || cfg.Rules[2].Message != "ask the platform team" || cfg.Rules[1].Action != ActionKeep {
		t.Errorf("rules = %+v", cfg.Rules)
	}
	if got := cfg.Workloads.Custom[0].APIVersion; got != `sparkoperator\.k8s\.io/.*` {
		t.Errorf("workloads.custom[0].apiVersion = %q", got)
	}
	if cfg.Policies.AllowList != nil {
		t.Errorf("policies.allowList = %#v, want nil for an empty list", cfg.Policies.AllowList)
	}
}

func TestParseReportsDecodingProblemsWithPathAndLine(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"an empty file says so", "", `config.yaml: the file is empty; expected a YAML mapping with keys such as sourceRegistries and targetRegistry`},
		{"a file of comments holds no configuration", "# nothing yet\n", `config.yaml: the file is empty; expected a YAML mapping with keys such as sourceRegistries and targetRegistry`},
		{"a null document holds no configuration", "~\n", `config.yaml: the file holds no configuration (only comments or null); expected a YAML mapping with keys such as sourceRegistries and targetRegistry`},
		{"a top-level list is not a config", "- docker.io\n", `config.yaml: line 1: the file holds a list; expected a YAML mapping with keys such as sourceRegistries and targetRegistry`},
		{"a top-level scalar is not a config", "registry.example.com\n", `config.yaml: line 1: the file holds the string "registry.example.com"; expected a YAML mapping with keys such as sourceRegistries and targetRegistry`},
		{"broken YAML syntax is reported with its line", "sourceRegistries: [docker.io\n", `config.yaml: invalid YAML: line 1: did not find expected ',' or ']'`},
		{"a second document is refused", "targetRegistry: a.example.com\n---\ntargetRegistry: b.example.com\n", `config.yaml: line 2: a second YAML document starts here; a config file holds exactly one`},
		{"an unknown key gets a suggestion", "mirroring:\n  namespaceSelector:\n    matchLabel: {a: b}\n", `config.yaml: line 3: mirroring.namespaceSelector.matchLabel: unknown key (did you mean "matchLabels"?)`},
		{"a transposed key in a rule gets a suggestion", "rules:\n  - action: keep\n  - action: keep\n  - targte: x\n", `config.yaml: line 4: rules[2].targte: unknown key (did you mean "target"?)` + "\n" + `config.yaml: line 4: rules[2].target: required: give a target to swap to, or set action to keep or deny`},
		{"a key in the wrong case gets the right case", "TargetRegistry: registry.example.com\n", `config.yaml: line 1: TargetRegistry: unknown key (did you mean "targetRegistry"?)`},
		{"an unknown key far from any known one gets no suggestion", "colour: blue\n", `config.yaml: line 1: colour: unknown key`},
		{"a duplicate key names the first", "mode: warn\nmode: audit\n", `config.yaml: line 2: mode: duplicate key (first set on line 1)`},
		{"a string where a list is expected", "sourceRegistries: docker.io\n", `config.yaml: line 1: sourceRegistries: expected a list, got the string "docker.io"`},
		{"a list where a string is expected", "targetRegistry: [a.example.com]\n", `config.yaml: line 1: targetRegistry: expected a string, got a list`},
		{"a mapping where a list element string is expected", "policies:\n  denyList:\n    - {a: b}\n", `config.yaml: line 3: policies.denyList[0]: expected a string, got a mapping`},
		{"a list where a mapping is expected", "mirroring: [a]\n", `config.yaml: line 1: mirroring: expected a mapping, got a list`},
		{"yes is not a boolean", "mirroring:\n  enabled: yes\n", `config.yaml: line 2: mirroring.enabled: expected true or false, got the string "yes"`},
		{"a quoted boolean is a string", "mirroring:\n  pinDigest: \"true\"\n", `config.yaml: line 2: mirroring.pinDigest: expected true or false, got the string "true"`},
		{"a number is not a duration", "mirroring:\n  waitBudget: 5\n", `config.yaml: line 2: mirroring.waitBudget: expected a duration such as 5s or 1500ms, got the number 5`},
		{"a malformed duration", "mirroring:\n  waitBudget: 5 seconds\n", `config.yaml: line 2: mirroring.waitBudget: "5 seconds" is not a duration such as 5s or 1500ms`},
		{"merge keys inside a rule are refused", "rules:\n  - &r {registry: ghcr.io, action: keep}\n  - <<: *r\n    registry: quay.io\n", `config.yaml: line 3: rules[1]: merge keys (<<) are not supported; write the keys out`},
		{"a non-string key is refused", "mirroring:\n  ? [a]\n  : b\n", `config.yaml: line 2: mirroring: keys must be strings, got a list`},
		{"a wrong type is reported once, not again as missing", "rules:\n  - registry: ghcr.io\n    target: [a]\n", `config.yaml: line 3: rules[0].target: expected a string, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("config.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %q", tt.doc, cfg, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%q) error =\n%s\nwant\n%s", tt.doc, got, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblemInFileOrder(t *testing.T) {
	const doc = `targetRegistry: https://registry.example.com
mode: Enforce
rules:
  - registry: ghcr.io
    action: Deny
  - image: nginx
    target: "{target}/{nope}"
colour: blue
`
	_, err := Parse("config.yaml", []byte(doc))
	want := strings.Join([]string{
		`config.yaml: line 1: targetRegistry: "https://registry.example.com" must not include a scheme; write "registry.example.com" instead of https://`,
		`config.yaml: line 2: mode: "Enforce" is not one of enforce, warn, audit`,
		`config.yaml: line 5: rules[0].action: "Deny" is not one of swap, keep, deny`,
		`config.yaml: line 7: rules[1].target: "{target}/{nope}" uses the unknown placeholder {nope}; allowed are {target}, {registry}, {repository}, {image}, {suffix}`,
		`config.yaml: line 8: colour: unknown key`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("Parse error =\n%v\nwant\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "targetRegistry" || fe.Line != 1 {
		t.Errorf("errors.As(err, *FieldError) = %+v, want the first problem, targetRegistry on line 1", fe)
	}
}

func TestParseAcceptsAliasesAndATrailingDocumentSeparator(t *testing.T) {
	const doc = `sourceRegistries: &src [docker.io]
targetRegistry: registry.example.com
policies:
  denyList: *src
---
`
	cfg, err := Parse("config.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !reflect.DeepEqual(cfg.Policies.DenyList, []string{"docker.io"}) {
		t.Errorf("policies.denyList = %v, want the aliased [docker.io]", cfg.Policies.DenyList)
	}
}

func TestParseBoundsAliasExpansion(t *testing.T) {
	// 200 rules share 200 expressions that share 200 values: 8 million
	// values from a file of a few kilobytes.
	list := func(first, rest string) string {
		return "[" + first + strings.Repeat(", "+rest, 199) + "]"
	}
	exprs := list("{key: a, operator: In, values: &v "+list("x", "x")+"}", "{key: a, operator: In, values: *v}")
	doc := "rules:\n" +
		"  - {registry: ghcr.io, action: keep, objectSelector: {matchExpressions: &e " + exprs + "}}\n" +
		strings.Repeat("  - {registry: ghcr.io, action: keep, objectSelector: {matchExpressions: *e}}\n", 199)
	_, err := Parse("bomb.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), "the document is too large") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("Parse(alias bomb) error = %v, want only a too-large error", err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(designExample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("mode: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(%s): %v", good, err)
	}
	_, err := Load(bad)
	if want := bad + `: line 1: mode: "loud" is not one of enforce, warn, audit`; err == nil || err.Error() != want {
		t.Errorf("Load(bad) error = %v, want %s", err, want)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want one naming %s and wrapping os.ErrNotExist", err, missing)
	}
}

func TestTheExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../../examples/config.yaml")
	if err != nil {
		t.Fatalf("examples/config.yaml: %v", err)
	}
	if cfg.TargetRegistry != "registry.example.com" {
		t.Errorf("targetRegistry = %q, want registry.example.com", cfg.TargetRegistry)
	}
	if cfg.Mirroring.NamespaceSelector != nil {
		t.Error("the example must not use a namespaceSelector: the CLI does not see namespace labels")
	}
	tiers := map[string]bool{}
	for _, r := range cfg.Rules {
		switch {
		case r.Image != "":
			tiers["image"] = true
		case r.Repository != "":
			tiers["repository"] = true
		case r.Registry != "" && r.EffectiveAction() == ActionKeep:
			tiers["registry keep"] = true
		}
		if r.EffectiveAction() == ActionDeny && r.Message != "" {
			tiers["deny with message"] = true
		}
	}
	for _, want := range []string{"image", "repository", "registry keep", "deny with message"} {
		if !tiers[want] {
			t.Errorf("the example has no %s rule", want)
		}
	}
}

func TestSuggestFindsNearMissesOnly(t *testing.T) {
	fields := jsonFields(reflect.TypeFor[Rule]())
	tests := []struct{ key, want string }{
		{"targte", "target"},
		{"Image", "image"},
		{"repo", ""},
		{"namespaceSelecter", "namespaceSelector"},
		{"x", ""},
		{"messages", "message"},
	}
	for _, tt := range tests {
		if got := suggest(tt.key, fields); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func BenchmarkParseExampleConfig(b *testing.B) {
	data, err := os.ReadFile("../../examples/config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("config.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse1000Rules(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("targetRegistry: registry.example.com\nrules:\n")
	for i := range 1000 {
		doc.WriteString("  - repository: \"docker.io/team" + strconv.Itoa(i) + "/*\"\n    target: \"{target}/team" + strconv.Itoa(i) + "/{suffix}\"\n")
	}
	data := []byte(doc.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("config.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTheDocumentationExamplesAreValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for i, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		yamlText, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("YAML block %d is not closed", i)
		}
		blocks++
		if _, err := Parse("docs/configuration.md block "+strconv.Itoa(i), []byte(yamlText)); err != nil {
			t.Errorf("%v\n%s", err, yamlText)
		}
	}
	if blocks < 5 {
		t.Errorf("found %d YAML blocks in docs/configuration.md, want at least 5", blocks)
	}
}
