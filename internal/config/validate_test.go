package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// valid returns a small valid config for the cases below to spoil.
func valid() *Config {
	return &Config{
		SourceRegistries: []string{"docker.io"},
		TargetRegistry:   "registry.example.com",
	}
}

func TestValidateReportsEachProblemWithItsPath(t *testing.T) {
	off := false
	tests := []spoilCase{
		// Enumerations.
		{"a mode must be lowercase", func(c *Config) { c.Mode = "Enforce" },
			`mode: "Enforce" is not one of enforce, warn, audit`},
		{"the policies mode is checked", func(c *Config) { c.Policies.Mode = "block" },
			`policies.mode: "block" is not one of enforce, warn, audit`},
		{"a rule's mode is checked", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionDeny, Mode: "dry-run"}}
		}, `rules[0].mode: "dry-run" is not one of enforce, warn, audit`},
		{"an action must be lowercase", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionKeep}, {Registry: "quay.io", Action: "Deny"}}
		}, `rules[1].action: "Deny" is not one of swap, keep, deny`},
		{"the swap policy is checked", func(c *Config) { c.Mirroring.Swap = "sometimes" },
			`mirroring.swap: "sometimes" is not one of exists, wait, always`},
		{"the scanning provider is trivy or grype", func(c *Config) { c.Security.Scanning.Provider = "clair" },
			`security.scanning.provider: "clair" is not one of trivy, grype`},
		{"scanning needs a provider", func(c *Config) { c.Security.Scanning.Enabled = true },
			`security.scanning.provider: required when scanning is enabled; one of trivy, grype`},

		// Wait budget.
		{"the wait budget must stay under the webhook timeout", func(c *Config) {
			c.Mirroring.WaitBudget = &metav1.Duration{Duration: 30 * time.Second}
		}, `mirroring.waitBudget: 30s must be more than 0s and less than 30s, the webhook timeout limit`},
		{"the wait budget must be positive", func(c *Config) {
			c.Mirroring.WaitBudget = &metav1.Duration{}
		}, `mirroring.waitBudget: 0s must be more than 0s and less than 30s, the webhook timeout limit`},
		{"concurrency cannot be negative", func(c *Config) { c.Mirroring.Concurrency = -1 },
			`mirroring.concurrency: -1 must be between 1 and 64 (0 means the default, 4)`},
		{"concurrency is bounded", func(c *Config) { c.Mirroring.Concurrency = 1000 },
			`mirroring.concurrency: 1000 must be between 1 and 64 (0 means the default, 4)`},

		// Registries.
		{"targetRegistry is required when sources are swapped", func(c *Config) { c.TargetRegistry = "" },
			`targetRegistry: required: used by sourceRegistries; set it to the mirror registry, e.g. registry.example.com`},
		{"targetRegistry is required by rules that use {target}", func(c *Config) {
			c.TargetRegistry, c.SourceRegistries = "", nil
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{image}"}}
		}, `targetRegistry: required: used by rules[0].target; set it to the mirror registry, e.g. registry.example.com`},
		{"targetRegistry has no scheme", func(c *Config) { c.TargetRegistry = "https://registry.example.com" },
			`targetRegistry: "https://registry.example.com" must not include a scheme; write "registry.example.com" instead of https://`},
		{"targetRegistry has no tag", func(c *Config) { c.TargetRegistry = "registry.example.com/mirror:v1" },
			`targetRegistry: "registry.example.com/mirror:v1" must not include a tag; it is a registry host with an optional path`},
		{"targetRegistry has no digest", func(c *Config) { c.TargetRegistry = "registry.example.com/m@sha256:abc" },
			`targetRegistry: "registry.example.com/m@sha256:abc" must not include a digest; it is a registry host with an optional path`},
		{"targetRegistry's host is checked", func(c *Config) { c.TargetRegistry = "registry_example.com" },
			`targetRegistry: "registry_example.com": registry host "registry_example.com" contains the character '_'; host names allow letters, digits, '-' and '.'`},
		{"targetRegistry's path is checked", func(c *Config) { c.TargetRegistry = "registry.example.com/Mirror" },
			`targetRegistry: "registry.example.com/Mirror" has an invalid path: repository name must be lowercase`},
		{"a source registry has no scheme", func(c *Config) { c.SourceRegistries = []string{"docker.io", "https://quay.io"} },
			`sourceRegistries[1]: "https://quay.io" must be a registry host without a scheme; write "quay.io" instead of https://`},
		{"a source registry has no path", func(c *Config) { c.SourceRegistries = []string{"docker.io/bitnami"} },
			`sourceRegistries[0]: "docker.io/bitnami" must be a registry host without a path; to match only part of a registry, add a rule with repository: "docker.io/*"`},
		{"a source registry is a valid host", func(c *Config) { c.SourceRegistries = []string{"quay.io:http"} },
			`sourceRegistries[0]: "quay.io:http": port "http" of registry host "quay.io:http" is not numeric`},
		{"a source registry is not empty", func(c *Config) { c.SourceRegistries = []string{""} },
			`sourceRegistries[0]: must not be empty`},

		// Lists.
		{"a pattern has no whitespace", func(c *Config) {
			c.Policies.DenyList = []string{"docker.io/a/*", "quay.io/*", "docker.io/**x y"}
		}, `policies.denyList[2]: "docker.io/**x y": pattern must not contain whitespace`},
		{"a pattern is valid UTF-8", func(c *Config) { c.Policies.DenyList = []string{"docker.io/\xff"} },
			`policies.denyList[0]: invalid glob "docker.io/\xff": pattern is not valid UTF-8`},
		{"an allowList pattern is not empty", func(c *Config) { c.Policies.AllowList = []string{""} },
			`policies.allowList[0]: must not be empty`},

		// Selectors.
		{"a label key is checked", func(c *Config) {
			c.Mirroring.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}
		}, `mirroring.namespaceSelector.matchLabels["bad key"]: key: Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{"a selector operator is checked", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionKeep, ObjectSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "in", Values: []string{"a"}}},
			}}}
		}, `rules[0].objectSelector.matchExpressions[0]: "in" is not a valid label selector operator`},

		// Rules.
		{"a rule matches by one thing", func(c *Config) {
			c.Rules = []Rule{{Image: "nginx", Repository: "docker.io/library/*", Action: ActionKeep}}
		}, `rules[0]: sets image and repository; a rule matches by at most one of image, repository and registry`},
		{"an exact image has no wildcard", func(c *Config) {
			c.Rules = []Rule{{Image: "docker.io/bitnami/*", Action: ActionKeep}}
		}, `rules[0].image: "docker.io/bitnami/*" contains a wildcard; an image rule matches one exact reference, use repository for patterns`},
		{"an exact image is a valid reference", func(c *Config) {
			c.Rules = []Rule{{Image: "Nginx", Action: ActionKeep}}
		}, `rules[0].image: "Nginx": repository name must be lowercase`},
		{"a repository pattern has no tag", func(c *Config) {
			c.Rules = []Rule{{Repository: "docker.io/bitnami/*:1.0", Action: ActionKeep}}
		}, `rules[0].repository: "docker.io/bitnami/*:1.0" names a tag or digest, but repository patterns match names without them; use image for one exact reference`},
		{"a swap rule needs a target", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionSwap}}
		}, `rules[0].target: required when action is swap`},
		{"a keep rule has no target", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionKeep, Target: "{target}/{image}"}}
		}, `rules[0].target: only used when action is swap, but action is keep`},
		{"a rule without action or target does nothing", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io"}}
		}, `rules[0].target: required: give a target to swap to, or set action to keep or deny`},
		{"only deny rules have a message", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Action: ActionKeep, Message: "why"}}
		}, `rules[0].message: only used when action is deny, but action is keep`},
		{"only deny rules have a mode", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{image}", Mode: ModeWarn}}
		}, `rules[0].mode: only used when action is deny, but action is swap`},
		{"rule names are unique", func(c *Config) {
			c.Rules = []Rule{{Name: "a", Registry: "ghcr.io", Action: ActionKeep}, {Name: "a", Registry: "quay.io", Action: ActionKeep}}
		}, `rules[1].name: "a" is already the name of rules[0]; rule names must be unique`},
		{"a rule's registry is a host", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io/org", Action: ActionKeep}}
		}, `rules[0].registry: "ghcr.io/org" must be a registry host without a path; to match only part of a registry, add a rule with repository: "ghcr.io/*"`},

		// Templates.
		{"a template uses known placeholders", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{host}/{repository}"}}
		}, `rules[0].target: "{target}/{host}/{repository}" uses the unknown placeholder {host}; allowed are {target}, {registry}, {repository}, {image}, {suffix}`},
		{"a template closes its braces", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{image"}}
		}, `rules[0].target: "{target}/{image" has a '{' without a matching '}'`},
		{"a template does not nest braces", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{ima{ge}"}}
		}, `rules[0].target: "{target}/{ima{ge}" has a '{' without a matching '}'`},
		{"a template opens its braces", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/image}"}}
		}, `rules[0].target: "{target}/image}" has a '}' without a matching '{'`},
		{"{suffix} belongs to repository rules", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/team{suffix}"}}
		}, `rules[0].target: "{target}/team{suffix}" uses {suffix}, which only rules with a repository pattern define`},
		{"only exact-image targets carry a tag", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{image}:v1"}}
		}, `rules[0].target: "{target}/{image}:v1" names a tag or digest; only exact-image rules may, other rules keep the original's`},
		{"a template renders a valid reference", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/Mirror/{image}"}}
		}, `rules[0].target: "{target}/Mirror/{image}" does not render a valid image reference (it gives "registry.example.com/Mirror/docker.io/library/nginx:1.0" for a sample image: repository name must be lowercase)`},
		{"a template begins with a registry host", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{registry}/{repository}"}}
		}, `rules[0].target: "{registry}/{repository}" must begin with a registry host and a '/', e.g. "{target}/..." or "registry.example.com/..."`},
		{"{target} needs targetRegistry even while swapping is off", func(c *Config) {
			c.TargetRegistry, c.SourceRegistries = "", []string{"docker.io"}
			c.Mirroring.Enabled = &off
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "{target}/{image}"}}
		}, `targetRegistry: required: used by rules[0].target; set it to the mirror registry, e.g. registry.example.com`},
		{"a template has no scheme", func(c *Config) {
			c.Rules = []Rule{{Registry: "ghcr.io", Target: "https://{target}/{image}"}}
		}, `rules[0].target: "https://{target}/{image}" must not include a scheme; write the registry host first`},

		// Namespaces and workloads.
		{"a namespace pattern is a namespace name", func(c *Config) { c.Namespaces.Exclude = []string{"Team_A"} },
			`namespaces.exclude[0]: "Team_A" is not a namespace name or wildcard (lowercase letters, digits, '-', '*' and '?')`},
		{"a custom kind needs a kind", func(c *Config) {
			c.Workloads.Custom = []CustomKind{{Images: []string{"{.spec.image}"}}}
		}, `workloads.custom[0].kind: required: a regular expression over the object's kind, e.g. SparkApplication`},
		{"a custom kind is a regular expression", func(c *Config) {
			c.Workloads.Custom = []CustomKind{{Kind: "Spark(", Images: []string{"{.spec.image}"}}}
		}, "workloads.custom[0].kind: \"Spark(\" is not a valid regular expression: missing closing ): `^(?:Spark()$`"},
		{"a custom apiVersion is a regular expression", func(c *Config) {
			c.Workloads.Custom = []CustomKind{{Kind: "Spark", APIVersion: "*", Images: []string{"{.spec.image}"}}}
		}, "workloads.custom[0].apiVersion: \"*\" is not a valid regular expression: missing argument to repetition operator: `*`"},
		{"a custom kind names images", func(c *Config) {
			c.Workloads.Custom = []CustomKind{{Kind: "Spark"}}
		}, `workloads.custom[0].images: required: at least one JSONPath expression, e.g. {.spec.image}`},
		{"a custom kind's image path is not blank", func(c *Config) {
			c.Workloads.Custom = []CustomKind{{Kind: "Spark", Images: []string{"{.spec.image}", " "}}}
		}, `workloads.custom[0].images[1]: must not be empty; write a JSONPath expression, e.g. {.spec.image}`},

		// Gate only.
		{"without swapping no target is needed", func(c *Config) {
			c.TargetRegistry = ""
			c.Mirroring.Enabled = &off
			c.Mode = "x"
		}, `mode: "x" is not one of enforce, warn, audit`},
	}
	checkSpoiled(t, tests)
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	c := valid()
	c.Mode = "loud"
	c.Policies.DenyList = []string{"a b"}
	c.Rules = []Rule{{Registry: "ghcr.io"}}
	err := c.Validate()
	want := strings.Join([]string{
		`mode: "loud" is not one of enforce, warn, audit`,
		`policies.denyList[0]: "a b": pattern must not contain whitespace`,
		`rules[0].target: required: give a target to swap to, or set action to keep or deny`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
}

func TestValidateAcceptsWhatTheDocsShow(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"the empty config, which swaps nothing", Config{}},
		{"a gate without mirroring", Config{Policies: Policies{DenyList: []string{"docker.io/*"}}}},
		{"wildcard source registries and a registry with a port", Config{
			SourceRegistries: []string{"*.gcr.io", "*", "localhost:5000", "[::1]:5000"},
			TargetRegistry:   "localhost:5001/mirror/a",
		}},
		{"a repository rule that replaces a prefix", Config{Rules: []Rule{{
			Repository: "registry.example.com/team1*", Target: "registry2.example.com/team-a{suffix}",
		}}}},
		{"an exact pin with its own tag and a digest pin", Config{TargetRegistry: "registry.example.com", Rules: []Rule{
			{Image: "nginx:1.27", Target: "{target}/pinned/nginx:1.27-alpine"},
			{Image: "busybox", Target: "registry.example.com/busybox@sha256:" + strings.Repeat("a", 64)},
		}}},
		{"a default rule", Config{Rules: []Rule{{Target: "registry.example.com/{image}"}}}},
		{"a deny rule with its own mode and message", Config{Rules: []Rule{
			{Registry: "ghcr.io", Action: ActionDeny, Mode: ModeWarn, Message: "use the mirror"},
		}}},
		{"source registries without a target while swapping is off", Config{
			Mirroring:        Mirroring{Enabled: new(bool)},
			SourceRegistries: []string{"docker.io"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

// spoilCase is a valid configuration with one thing spoiled, and the exact
// error Validate must give.
type spoilCase struct {
	name  string
	spoil func(c *Config)
	want  string
}

// checkSpoiled runs spoilCases: each must fail validation with exactly its
// message, as a FieldError with a path and no line.
func checkSpoiled(t *testing.T, tests []spoilCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.spoil(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %s", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path == "" || fe.Line != 0 {
				t.Errorf("errors.As(err, *FieldError) = %+v, want a FieldError with a path and no line", fe)
			}
		})
	}
}
