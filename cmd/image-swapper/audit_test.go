package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/store"
)

func TestAudit(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("store:\n  path: "+db+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := func(ago time.Duration, ns, image, action string) store.AdmissionRecord {
		return store.AdmissionRecord{Time: now.Add(-ago), UID: "0b6e1c5a-6a43-4c0e-9a53-3f0c8e6a1d20", Operation: "CREATE", Endpoint: store.EndpointMutate,
			Namespace: ns, Pod: "web-*", OwnerKind: "ReplicaSet", OwnerName: "web", Container: "app", ContainerKind: store.ContainerRegular,
			Image: image, Normalized: "docker.io/library/" + image, Action: action, Target: "mirror.example.com/library/" + image, Rule: "default"}
	}
	denied := rec(time.Minute, "shop", "redis:7", "deny")
	denied.Violations = []store.Violation{{Rule: "policies.denyList[0]", Mode: "enforce", Message: "denied"}}
	denied.Target = ""
	err = st.Write(ctx, &store.Batch{
		Admissions: []store.AdmissionRecord{rec(3*time.Hour, "shop", "nginx:1.27", "swap"), rec(2*time.Minute, "payments", "nginx:1.27", "swap"), denied},
		Gaps:       []store.Gap{{From: now.Add(-90 * time.Second), To: now.Add(-80 * time.Second), Count: 7}},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	audit := func(args ...string) (string, string, int) {
		code, out, errOut := runCLI(t, "", append([]string{"audit", "--config", cfgPath}, args...)...)
		return out, errOut, code
	}
	out, stderr, code := audit("--since", "1h", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 2 records and a gap:\n%s", len(lines), out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "uid", "operation", "endpoint", "namespace", "pod", "owner", "container", "image", "normalized", "action", "target", "digest", "rule", "violations", "dryRun"} {
		if _, ok := first[k]; !ok {
			t.Errorf("the JSON record lacks %q: %s", k, lines[0])
		}
	}
	if first["action"] != "deny" || first["owner"] != "ReplicaSet/web" || first["time"] != denied.Time.Format(time.RFC3339Nano) {
		t.Errorf("the newest record should come first: %s", lines[0])
	}
	if !strings.Contains(lines[2], `"gap":{"count":7`) {
		t.Errorf("the last line should be the gap: %s", lines[2])
	}
	out, _, _ = audit("--namespace", "pay*", "-o", "json")
	if n := strings.Count(out, `"uid"`); n != 1 || !strings.Contains(out, `"namespace":"payments"`) {
		t.Errorf("--namespace pay* listed %d records:\n%s", n, out)
	}
	out, _, _ = audit("--image", "docker.io/library/redis:*")
	if !strings.Contains(out, "redis:7") || strings.Contains(out, "nginx") || !strings.Contains(out, "GAP: 7 records lost") {
		t.Errorf("--image table output:\n%s", out)
	}
	if _, stderr, code := audit("-o", "yaml"); code != exitTrouble || !strings.Contains(stderr, "-o \"yaml\"") {
		t.Errorf("-o yaml: exit %d, %s", code, stderr)
	}
	if _, stderr, code := audit("--image", "a b"); code != exitTrouble || !strings.Contains(stderr, "--image") {
		t.Errorf("a bad glob: exit %d, %s", code, stderr)
	}
}
