package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command line in process and returns its exit status and
// output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const exampleConfig = "../../examples/config.yaml"

func TestRewriteExampleFile(t *testing.T) {
	code, out, errOut := runCLI(t, "", "rewrite", "--config", exampleConfig, "-f", "../../examples/manifests.yaml")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	want, err := os.ReadFile("../../internal/manifest/testdata/example.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("rewrite output differs from the golden file:\n%s", out)
	}
}

func TestRewriteReadsStdin(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: quay.io/a/b:1 # keep this comment\n"
	code, out, errOut := runCLI(t, in, "rewrite", "--config", exampleConfig)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	want := strings.Replace(in, "quay.io/a/b:1", "registry.example.com/quay.io/a/b:1", 1)
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestRewriteDenialWritesNothingAndExits1(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers:\n  - name: db\n    image: docker.io/unknown/db:1\n"
	code, out, errOut := runCLI(t, in, "rewrite", "--config", exampleConfig, "-f", "-")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout is not empty on denial:\n%s", out)
	}
	for _, want := range []string{"document 0 (Pod shop/p)", `container "db"`, `image "docker.io/unknown/db:1"`, `policies.denyList[0]`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
}

func TestRewriteWarnModeWritesAndWarns(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	data := "sourceRegistries: [docker.io]\ntargetRegistry: registry.example.com\nmode: warn\npolicies:\n  denyList: [\"docker.io/unknown/*\"]\n"
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: db\n    image: docker.io/unknown/db:1\n"
	code, out, errOut := runCLI(t, in, "rewrite", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	if !strings.Contains(out, "registry.example.com/docker.io/unknown/db:1") {
		t.Errorf("warn mode did not swap:\n%s", out)
	}
	if !strings.HasPrefix(errOut, "warn: document 0 (Pod p)") || !strings.Contains(errOut, "denyList") {
		t.Errorf("stderr has no warning naming the document and the list:\n%s", errOut)
	}
}

func TestBadConfigExits2WithKeyPath(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("targetRegistry: r.example.com\nmirroring:\n  swapp: always\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "rewrite", "--config", cfg)
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	if !strings.Contains(errOut, "mirroring.swapp: unknown key") {
		t.Errorf("stderr does not name the key path:\n%s", errOut)
	}
}

func TestMissingConfigFlagExits2(t *testing.T) {
	code, _, errOut := runCLI(t, "", "rewrite")
	if code != 2 || !strings.Contains(errOut, `"config" not set`) {
		t.Fatalf("exit %d, stderr %q; want 2 naming the config flag", code, errOut)
	}
}

func TestExplainJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "", "explain", "--config", exampleConfig, "-o", "json", "nginx:1.27", "docker.io/unknown/x", "gcr.io/other/app:1")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one JSON object per image:\n%s", len(lines), out)
	}
	want := []struct{ action, target, rule string }{
		{"swap", "registry.example.com/vetted/nginx:1.27.3", "vetted-nginx"},
		{"deny", "", `policies.denyList[0] "docker.io/unknown/*"`},
		{"deny", "", "policies.allowList"},
	}
	for i, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		for _, key := range []string{"image", "normalized", "action", "target", "rule", "reasons"} {
			if _, ok := obj[key]; !ok {
				t.Errorf("line %d lacks key %q: %s", i, key, line)
			}
		}
		if obj["action"] != want[i].action || obj["target"] != want[i].target || obj["rule"] != want[i].rule {
			t.Errorf("line %d: action %v target %v rule %v; want %+v", i, obj["action"], obj["target"], obj["rule"], want[i])
		}
	}
}

func TestExplainTextNamesRuleAndReasons(t *testing.T) {
	code, out, _ := runCLI(t, "", "explain", "--config", exampleConfig, "--namespace", "kube-system", "nginx")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"normalized: docker.io/library/nginx:latest", "action:     keep", "namespace kube-system is excluded"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestImportImageSwapPrintsConfigAndFindings(t *testing.T) {
	maps := filepath.Join(t.TempDir(), "maps")
	content := "default::registry.example.com\nquay.io::\nnoswap_wildcards::registry.example.com, internal.example.com\nbogus line\n"
	if err := os.WriteFile(maps, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "import", "imageswap", maps)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	if !strings.Contains(out, "registry.example.com") {
		t.Errorf("stdout has no config:\n%s", out)
	}
	if !strings.Contains(errOut, "bogus line") {
		t.Errorf("stderr does not report the untranslated line:\n%s", errOut)
	}
	// What the importer prints must load as our config.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "explain", "--config", cfg, "nginx"); code != 0 {
		t.Errorf("imported config does not load: %s", errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "image-swapper ") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
