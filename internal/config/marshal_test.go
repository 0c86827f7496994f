package config

import (
	"flag"
	"os"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// full sets every key of the schema.
func full() *Config {
	on := true
	return &Config{
		SourceRegistries: []string{"docker.io", "*.gcr.io", "localhost:5000"},
		TargetRegistry:   "registry.example.com/mirror",
		Mode:             ModeWarn,
		Mirroring: Mirroring{
			Enabled: &on,
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"enable-mirroring": "true", "app.kubernetes.io/part-of": "shop"},
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"1.10", "yes"}},
					{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
				},
			},
			ObjectSelector: &metav1.LabelSelector{},
			Condition:      `object.kind != "Job"`,
			Swap:           SwapWait,
			WaitBudget:     &metav1.Duration{Duration: 1500 * time.Millisecond},
			PinDigest:      true,
		},
		Security: Security{Scanning: Scanning{Enabled: true, Provider: "trivy", FailOnCritical: true}},
		Policies: Policies{
			AllowList: []string{"registry.example.com/*"},
			DenyList:  []string{"docker.io/unknown/*"},
			Mode:      ModeAudit,
		},
		Rules: []Rule{
			{Name: "pin nginx", Image: "nginx:1.27", Target: "{target}/pinned/nginx:1.27"},
			{Repository: "registry.example.com/team1*", Target: "registry2.example.com/team-a{suffix}"},
			{Registry: "ghcr.io", Action: ActionKeep, ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "infra"}}},
			{Registry: "quay.io", Action: ActionDeny, Mode: ModeEnforce, Message: "Quay is not mirrored: ask #platform", Condition: "true"},
		},
		Namespaces: Namespaces{Exclude: []string{"sandbox-*"}, Include: []string{"kube-system"}},
		Workloads: Workloads{Custom: []CustomKind{
			{Kind: "SparkApplication", APIVersion: `sparkoperator\.k8s\.io/.*`, Images: []string{"{.spec.image}", ".spec.executor.image"}},
		}},
	}
}

func TestMarshalWritesKeysInSchemaOrder(t *testing.T) {
	got, err := Marshal(full())
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	const golden = "testdata/full.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("Marshal(full config) =\n%s\nwant (%s)\n%s", got, golden, want)
	}
}

func TestMarshalThenParseGivesAnEqualConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  *Config
	}{
		{"every key set", full()},
		{"nothing set", &Config{}},
		{"the design example", mustParse(t, designExample)},
		{"strings that look like other YAML types", &Config{
			TargetRegistry: "registry.example.com",
			Rules: []Rule{
				{Name: "true", Registry: "ghcr.io", Action: ActionDeny, Message: "null"},
				{Name: "1.10", Registry: "quay.io", Action: ActionDeny, Message: "- a: b # c\n  second line"},
				{Name: "~", Registry: "registry.k8s.io", Action: ActionDeny, Message: "{target}"},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Marshal(tt.cfg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			back, err := Parse("marshalled.yaml", out)
			if err != nil {
				t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, tt.cfg) {
				t.Errorf("Parse(Marshal(cfg)) =\n%#v\nwant\n%#v\nYAML:\n%s", back, tt.cfg, out)
			}
		})
	}
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
