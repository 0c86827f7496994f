package manifest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

var update = flag.Bool("update", false, "rewrite golden files")

func newRewriter(t testing.TB, configPath string, opts Options) *Rewriter {
	t.Helper()
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := NewRewriter(e, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rw
}

// TestRewriteExample rewrites the shipped example and compares the result
// with a golden file; lines that are not image values must not change.
func TestRewriteExample(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{})
	in, err := os.ReadFile("../../examples/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := rw.Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Denied(); len(d) > 0 {
		t.Fatalf("example has denied images: %s", d[0].Where())
	}
	golden := filepath.Join("testdata", "example.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, res.Output, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Output, want) {
		t.Fatalf("output differs from %s (run with -update to accept):\n%s", golden, res.Output)
	}
	assertOnlyImageLinesChanged(t, in, res.Output)
	swaps := 0
	for _, f := range res.Findings {
		if f.Decision.Action == config.ActionSwap {
			swaps++
		}
	}
	if swaps != 7 {
		t.Errorf("%d images swapped, want all 7 images of the example", swaps)
	}
}

func assertOnlyImageLinesChanged(t *testing.T, before, after []byte) {
	t.Helper()
	a := strings.Split(string(before), "\n")
	b := strings.Split(string(after), "\n")
	if len(a) != len(b) {
		t.Fatalf("line count changed from %d to %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] && !strings.Contains(a[i], "image:") && !strings.Contains(a[i], "reference:") {
			t.Errorf("line %d changed but holds no image:\n- %s\n+ %s", i+1, a[i], b[i])
		}
	}
}

func TestRewriteIsIdempotentOnStreams(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{})
	in, err := os.ReadFile("../../examples/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	once, err := rw.Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := rw.Rewrite(once.Output)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once.Output, twice.Output) {
		t.Fatalf("rewrite(rewrite(x)) != rewrite(x):\n%s", twice.Output)
	}
}

func TestDenialNamesDocumentContainerImageAndRule(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{})
	in := []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  namespace: shop
spec:
  template:
    spec:
      containers:
        - name: db
          image: bitnamilegacy/postgresql:14
`)
	res, err := rw.Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	denied := res.Denied()
	if len(denied) != 1 {
		t.Fatalf("%d denied findings, want 1", len(denied))
	}
	where := denied[0].Where()
	want := `document 1 (Deployment shop/legacy), container "db", spec.template.spec.containers[0].image, image "bitnamilegacy/postgresql:14"`
	if where != want {
		t.Errorf("Where() = %s\nwant       %s", where, want)
	}
	if msg := strings.Join(denied[0].Decision.Denials(), ";"); !strings.Contains(msg, "no-bitnami-legacy") {
		t.Errorf("denial %q does not name the rule no-bitnami-legacy", msg)
	}
}

func TestNamespaceOptionAppliesToObjectsWithoutOne(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{Namespace: "kube-system"})
	in := []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: c, image: \"nginx:1.26\"}\n")
	res, err := rw.Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Output, in) {
		t.Errorf("a Pod in kube-system was changed:\n%s", res.Output)
	}
}

func TestSyntaxErrorNamesTheDocument(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{})
	_, err := rw.Rewrite([]byte("kind: Pod\n---\nkind: Pod\nspec: {containers: [image: x\n"))
	if err == nil || !strings.Contains(err.Error(), "document 1") {
		t.Fatalf("Rewrite: %v, want a syntax error naming document 1", err)
	}
}

// largeStream builds n documents: Deployments with three containers,
// Services and ConfigMaps, as a big Helm release renders them.
func largeStream(n int) []byte {
	var b bytes.Buffer
	images := []string{"nginx:1.27", "quay.io/prometheus/prometheus:v3.1.0", "ghcr.io/fluxcd/source-controller:v1.4.1", "bitnami/redis:7.2", "registry.k8s.io/pause:3.10"}
	for i := range n {
		if i > 0 {
			b.WriteString("---\n")
		}
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%[1]d
  namespace: team-%[2]d
  labels:
    app.kubernetes.io/name: app-%[1]d
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%[1]d
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%[1]d
    spec:
      initContainers:
        - name: init
          image: "%[3]s"
          command: ["sh", "-c", "echo init"]
      containers:
        - name: app
          image: %[4]s
          ports:
            - containerPort: 8080
          env:
            - name: MODE
              value: production
          resources:
            limits: {cpu: 500m, memory: 256Mi}
        - name: sidecar
          image: %[5]s # metrics
          args: ["--port=9090"]
`, i, i%7, images[i%5], images[(i+1)%5], images[(i+2)%5])
		case 1:
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-%d\nspec:\n  selector:\n    app: x\n  ports:\n    - port: 80\n      targetPort: 8080\n", i)
		default:
			fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%d\ndata:\n  app.conf: |\n    listen 8080;\n    workers 4;\n", i)
		}
	}
	return b.Bytes()
}

func TestLargeStreamRewrites(t *testing.T) {
	rw := newRewriter(t, "../../examples/config.yaml", Options{})
	in := largeStream(300)
	res, err := rw.Rewrite(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Denied()) != 0 {
		t.Fatalf("denied: %s", res.Denied()[0].Where())
	}
	if got, want := len(res.Findings), 100*3; got != want {
		t.Errorf("%d image findings, want %d", got, want)
	}
	assertOnlyImageLinesChanged(t, in, res.Output)
}

// BenchmarkRewrite10000Documents is the measure: a 10,000-document
// stream through the whole rewrite (split, parse, decide, splice).
func BenchmarkRewrite10000Documents(b *testing.B) {
	rw := newRewriter(b, "../../examples/config.yaml", Options{})
	in := largeStream(10000)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rw.Rewrite(in); err != nil {
			b.Fatal(err)
		}
	}
}
