package report

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// crdPath is the upstream PolicyReport CRD (see testdata/crd/README.md).
var crdPath = filepath.Join("testdata", "crd", "wgpolicyk8s.io_policyreports.yaml")

// warnings collects the API server's warnings (a pruned field, for one).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	w.list = append(w.list, text)
	w.mu.Unlock()
}

// installPolicyReportCRD installs the upstream CRD in the control plane
// and waits until reports can be listed.
func installPolicyReportCRD(t *testing.T, cfg *rest.Config) {
	t.Helper()
	if err := testenv.InstallCRDs(cfg, crdPath); err != nil {
		t.Fatal(err)
	}
}

func createNamespaces(t *testing.T, cfg *rest.Config, names ...string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// prefixed is r with its namespaces renamed prefix-NAME, so that tests
// sharing a control plane do not meet.
func prefixed(r *Report, prefix string) *Report {
	out := *r
	out.Images = nil
	for _, img := range r.Images {
		img.Usage = append([]Usage(nil), img.Usage...)
		for i := range img.Usage {
			img.Usage[i].Namespace = prefix + "-" + img.Usage[i].Namespace
			ws := append([]Workload(nil), img.Usage[i].Workloads...)
			for j := range ws {
				ws[j].Namespace = img.Usage[i].Namespace
			}
			img.Usage[i].Workloads = ws
		}
		out.Images = append(out.Images, img)
	}
	return &out
}

func namespacesOf(reports []PolicyReport) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range reports {
		if !seen[p.Metadata.Namespace] {
			seen[p.Metadata.Namespace] = true
			out = append(out, p.Metadata.Namespace)
		}
	}
	return out
}

// TestPolicyReportsAcceptedByTheAPIServer installs the upstream
// PolicyReport CRD in a real kube-apiserver and creates there the reports
// of the seeded ledger, and the parts of a namespace too large for one
// report: any the API server rejects fails the test.
func TestPolicyReportsAcceptedByTheAPIServer(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	cfg := cp.Config()
	warn := &warnings{}
	cfg.WarningHandler = warn
	installPolicyReportCRD(t, cfg)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := openSQLite(t)
	seed(t, st)
	seeded, err := PolicyReports(prefixed(build(t, st, ""), "accepted"), MaxPolicyReportBytes)
	if err != nil {
		t.Fatal(err)
	}
	large, err := PolicyReports(prefixed(manyImages(2000), "accepted-large"), 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(large) < 2 {
		t.Fatalf("the large namespace is %d report(s), want parts", len(large))
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		reports []PolicyReport
	}{{"the seeded ledger's reports", seeded}, {"the parts of a large namespace", large}} {
		t.Run(tc.name, func(t *testing.T) {
			createNamespaces(t, cfg, namespacesOf(tc.reports)...)
			for i := range tc.reports {
				p := &tc.reports[i]
				u, err := toUnstructured(p)
				if err != nil {
					t.Fatal(err)
				}
				res := dyn.Resource(PolicyReportResource).Namespace(p.Metadata.Namespace)
				got, err := res.Create(ctx, u, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("the API server rejected PolicyReport %s/%s: %v", p.Metadata.Namespace, p.Metadata.Name, err)
				}
				// Other tests of the control plane apply reports of their own.
				t.Cleanup(func() { _ = res.Delete(context.Background(), p.Metadata.Name, metav1.DeleteOptions{}) })
				results, _, _ := unstructured.NestedSlice(got.Object, "results")
				if len(results) != len(p.Results) {
					t.Errorf("%s/%s: stored %d results, sent %d", p.Metadata.Namespace, p.Metadata.Name, len(results), len(p.Results))
				}
				for j, r := range results {
					m := r.(map[string]any)
					if m["result"] != p.Results[j].Result || m["rule"] != p.Results[j].Rule || fmt.Sprint(m["severity"]) != fmt.Sprint(orNone(p.Results[j].Severity)) {
						t.Errorf("%s/%s result %d stored as %v, sent %+v", p.Metadata.Namespace, p.Metadata.Name, j, m, p.Results[j])
					}
				}
			}
		})
	}
	// The upstream v1alpha2 schema has no results[].source: the API
	// server prunes it, and says so. Nothing else may be pruned.
	warn.mu.Lock()
	defer warn.mu.Unlock()
	for _, w := range warn.list {
		if !strings.Contains(w, "unknown field") || !strings.Contains(w, ".source") {
			t.Errorf("API server warning: %s", w)
		}
	}
}

func orNone(s string) any {
	if s == "" {
		return "<nil>"
	}
	return s
}

// TestApplyPolicyReportsKeepsTheClusterCurrent applies a ledger's reports
// three times: the first creates them, the second (the same ledger)
// changes nothing, the third (a namespace fewer, and fewer parts)
// updates and deletes what is stale.
func TestApplyPolicyReportsKeepsTheClusterCurrent(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	cfg := cp.Config()
	cfg.WarningHandler = rest.NoWarnings{}
	installPolicyReportCRD(t, cfg)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := openSQLite(t)
	seed(t, st)
	base := prefixed(build(t, st, ""), "apply")
	seeded, err := PolicyReports(base, MaxPolicyReportBytes)
	if err != nil {
		t.Fatal(err)
	}
	large, err := PolicyReports(prefixed(manyImages(2000), "apply-large"), 100_000)
	if err != nil {
		t.Fatal(err)
	}
	createNamespaces(t, cfg, append(namespacesOf(seeded), namespacesOf(large)...)...)
	ctx := context.Background()
	all := append(append([]PolicyReport(nil), seeded...), large...)
	got, err := ApplyPolicyReports(ctx, dyn, all, "image-swapper")
	if err != nil {
		t.Fatal(err)
	}
	if got != (Applied{Created: len(all)}) {
		t.Errorf("first apply %+v, want %d created", got, len(all))
	}
	// The same ledger an hour later: only timestamps differ.
	later := *base
	later.Generated = base.Generated.Add(time.Hour)
	again, _ := PolicyReports(&later, MaxPolicyReportBytes)
	if got, err = ApplyPolicyReports(ctx, dyn, append(again, large...), "image-swapper"); err != nil {
		t.Fatal(err)
	}
	if got != (Applied{Unchanged: len(all)}) {
		t.Errorf("second apply %+v, want all %d unchanged", got, len(all))
	}
	// The large namespace shrinks to one report; apply-shop is gone.
	small, _ := PolicyReports(prefixed(manyImages(20), "apply-large"), 100_000)
	var kept []PolicyReport
	for _, p := range seeded {
		if p.Metadata.Namespace != "apply-shop" {
			kept = append(kept, p)
		}
	}
	if got, err = ApplyPolicyReports(ctx, dyn, append(kept, small...), "image-swapper"); err != nil {
		t.Fatal(err)
	}
	if want := (Applied{Updated: 1, Unchanged: len(kept), Deleted: len(large) - 1 + 1}); got != want {
		t.Errorf("third apply %+v, want %+v: apply-large-shop's first report updated, its other parts and apply-shop's report deleted", got, want)
	}
	if _, err := dyn.Resource(PolicyReportResource).Namespace("apply-shop").Get(ctx, PolicyReportSource, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("apply-shop's report: %v, want it deleted", err)
	}
	list, err := dyn.Resource(PolicyReportResource).Namespace("apply-large-shop").List(ctx, metav1.ListOptions{LabelSelector: ManagedBySelector})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].GetName() != PolicyReportSource {
		var names []string
		for _, it := range list.Items {
			names = append(names, it.GetName())
		}
		t.Errorf("apply-large-shop holds %v, want only %s", names, PolicyReportSource)
	}
}
