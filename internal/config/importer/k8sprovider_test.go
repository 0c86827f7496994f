package importer

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
)

func importFile(t *testing.T, name string) (*config.Config, []Finding) {
	t.Helper()
	data, err := os.ReadFile("testdata/k8s-image-swapper/" + name)
	if err != nil {
		t.Fatal(err)
	}
	cfg, fs, err := K8sImageSwapper(data)
	if err != nil {
		t.Fatalf("K8sImageSwapper(%s): %v", name, err)
	}
	return cfg, fs
}

func TestK8sImageSwapperCarriesTheTargetOverToTargetProvider(t *testing.T) {
	tests := []struct {
		name, file string
		want       *config.TargetProvider
	}{
		{"every ECR option has its targetProvider.ecr field", "ecr-options.yml", &config.TargetProvider{ECR: &config.ECR{
			Region:        "eu-west-1",
			AccountID:     "123456789012",
			AssumeRoleARN: "arn:aws:iam::123456789012:role/k8s-image-swapper",
			Tags: []config.Tag{
				{Key: "CreatedBy", Value: "k8s-image-swapper"},
				{Key: "cluster", Value: "prod-eu"},
			},
			ImageTagMutability: "IMMUTABLE",
			ScanOnPush:         false,
			EncryptionType:     "KMS",
			KMSKey:             "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			AccessPolicy:       mustRead(t, "ecr-options.yml", "accessPolicy"),
			LifecyclePolicy:    mustRead(t, "ecr-options.yml", "lifecyclePolicy"),
		}}},
		{"without ecrOptions, k8s-image-swapper's scan on push still applies", "ecr-options-defaults.yml", &config.TargetProvider{ECR: &config.ECR{
			Region: "us-east-1", AccountID: "000123456789", ScanOnPush: true,
		}}},
		{"options image-swapper refuses leave the rest", "ecr-options-refused.yml", &config.TargetProvider{ECR: &config.ECR{
			Region: "eu-west-1", AccountID: "123456789012", ScanOnPush: true,
		}}},
		{"a GCP target is an Artifact Registry provider", "docs-gcp.yml", &config.TargetProvider{ArtifactRegistry: &config.ArtifactRegistry{
			Project: "gcp-project-123", Location: "us-central1", Repository: "main",
		}}},
		{"the docs' 9-digit account is no ECR account to create repositories in", "docs-aws.yml", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, fs := importFile(t, tt.file)
			if !reflect.DeepEqual(cfg.TargetProvider, tt.want) {
				t.Errorf("targetProvider = %s, want %s", dump(cfg.TargetProvider), dump(tt.want))
			}
			if tt.want != nil && tt.want.ECR != nil && tt.file == "ecr-options.yml" {
				// Nothing that translated is reported as not imported.
				for _, f := range fs {
					if strings.Contains(f.Reason, "not imported") {
						t.Errorf("finding %q for an option that has an equivalent", f)
					}
				}
			}
		})
	}
}

func TestK8sImageSwapperDryRunBecomesImageSwapperDryRun(t *testing.T) {
	cfg, fs := importFile(t, "docs-dry-run.yml")
	if !cfg.DryRun {
		t.Error("dryRun: true was not imported as dryRun: true")
	}
	found := false
	for _, f := range fs {
		if f.Input == "dryRun" {
			found = strings.Contains(f.Reason, "imported as dryRun: true") && strings.Contains(f.Reason, "#129")
		}
	}
	if !found {
		t.Errorf("no finding says that k8s-image-swapper ignored dryRun while image-swapper honours it: %v", fs)
	}
	cfg, _ = importFile(t, "docs-aws.yml")
	if cfg.DryRun {
		t.Error("a config without dryRun was imported as a dry run")
	}
}

// mustRead returns a string option of target.aws.ecrOptions as the YAML
// file holds it.
func mustRead(t *testing.T, file, key string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/k8s-image-swapper/" + file)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseYAMLMapping(data)
	if err != nil {
		t.Fatal(err)
	}
	n := root
	for _, k := range []string{"target", "aws", "ecrOptions", key} {
		m, err := newYmap(n, "")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ = m.get(k); n == nil {
			t.Fatalf("%s has no %s", file, k)
		}
	}
	return n.Value
}

func dump(tp *config.TargetProvider) string {
	out, err := config.Marshal(&config.Config{TargetProvider: tp})
	if err != nil {
		return err.Error()
	}
	return string(out)
}
