package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// installPolicyReportCRD installs the upstream PolicyReport CRD the
// report package's tests keep, and waits until reports can be listed.
func installPolicyReportCRD(t *testing.T, cfg *rest.Config) {
	t.Helper()
	if err := testenv.InstallCRDs(cfg, "../../internal/report/testdata/crd/wgpolicyk8s.io_policyreports.yaml"); err != nil {
		t.Fatal(err)
	}
}

// passes counts one replica's PolicyReport passes.
type passes struct {
	mu   sync.Mutex
	n    int
	last report.Applied
	err  error
}

func (p *passes) record(a report.Applied, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.last, p.err = a, err
}

func (p *passes) get() (int, report.Applied, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.last, p.err
}

// TestServePolicyReportsOnTheLeaderOnly runs serve's PolicyReport loop on
// two replicas against a real kube-apiserver, with the upstream CRD: only
// the Lease holder writes the reports and keeps them current; when it
// stops, it releases the Lease and the other replica takes over.
func TestServePolicyReportsOnTheLeaderOnly(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	admin := cp.Config()
	admin.WarningHandler = rest.NoWarnings{}
	installPolicyReportCRD(t, admin)
	kubeconfig := adminKubeconfig(t, cp, "policy-reports-admin")
	client := kubernetes.NewForConfigOrDie(admin)
	const home = "prw-system"
	for _, ns := range []string{home, "prw-shop", "prw-pay", "prw-new"} {
		if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath, st := reportLedger(t)
	admit(t, st, "u1", "prw-shop", "docker.io/library/nginx:1.27")
	admit(t, st, "u2", "prw-pay", "docker.io/library/redis:7")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	startReplica := func(p *passes) *background {
		f := policyReportFlags{enabled: true, interval: 300 * time.Millisecond, since: "30d", lease: "image-swapper-leader", applied: p.record}
		loop, err := f.loop((&kubeFlags{kubeconfig: kubeconfig}).access(), home, func() *config.Config { return cfg }, st, log)
		if err != nil {
			t.Fatal(err)
		}
		r := startBackground(context.Background(), client, home, f.lease, log, loop)
		t.Cleanup(r.stop)
		return r
	}
	reports := dynamic.NewForConfigOrDie(admin).Resource(report.PolicyReportResource)
	exists := func(ns string) bool {
		_, err := reports.Namespace(ns).Get(context.Background(), report.PolicyReportSource, metav1.GetOptions{})
		return err == nil
	}

	var a, b passes
	ra := startReplica(&a)
	testenv.WaitFor(t, "replica a writes the reports of prw-shop and prw-pay", 20*time.Second, func() bool { return exists("prw-shop") && exists("prw-pay") })
	startReplica(&b)
	// A pod in a new namespace: the leader adds its report.
	admit(t, st, "u3", "prw-new", "docker.io/library/debian:12")
	testenv.WaitFor(t, "replica a writes the report of prw-new", 10*time.Second, func() bool { return exists("prw-new") })
	time.Sleep(time.Second)
	if n, _, _ := b.get(); n != 0 {
		t.Fatalf("replica b made %d passes while a led", n)
	}
	na, last, err := a.get()
	if err != nil || na < 3 || last.Unchanged != 3 || last.Created+last.Updated+last.Deleted != 0 {
		t.Errorf("replica a: %d passes, the last %+v (%v); want several, the last changing nothing", na, last, err)
	}

	ra.stop()
	stopped := time.Now()
	na, _, _ = a.get()
	testenv.WaitFor(t, "replica b takes over", 20*time.Second, func() bool { n, _, _ := b.get(); return n > 0 })
	t.Logf("replica b took over %s after replica a stopped", time.Since(stopped).Round(time.Millisecond))
	if n, _, _ := a.get(); n != na {
		t.Errorf("replica a made %d passes after it stopped", n-na)
	}
	_, last, err = b.get()
	if err != nil || last != (report.Applied{Unchanged: 3}) {
		t.Errorf("replica b's first pass %+v (%v), want the 3 reports unchanged", last, err)
	}
	lease, err := client.CoordinationV1().Leases(home).Get(context.Background(), "image-swapper-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("the Lease has no holder after b took over: %+v", lease.Spec)
	}
}

// TestPolicyReportsSinceNarrowsTheWindow: --policy-reports-since 7d
// leaves out a namespace whose last admission is older, and a PolicyReport
// of the wider window that no longer has a namespace is deleted.
func TestPolicyReportsSinceNarrowsTheWindow(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	admin := cp.Config()
	admin.WarningHandler = rest.NoWarnings{}
	installPolicyReportCRD(t, admin)
	kubeconfig := adminKubeconfig(t, cp, "policy-reports-since")
	client := kubernetes.NewForConfigOrDie(admin)
	for _, ns := range []string{"prs-system", "prs-recent", "prs-old"} {
		if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath, st := reportLedger(t)
	admit(t, st, "s1", "prs-recent", "docker.io/library/nginx:1.27")
	admitAt(t, st, time.Now().UTC().Add(-10*24*time.Hour), "s2", "prs-old", "docker.io/library/redis:7")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	reports := dynamic.NewForConfigOrDie(admin).Resource(report.PolicyReportResource)
	exists := func(ns string) bool {
		_, err := reports.Namespace(ns).Get(context.Background(), report.PolicyReportSource, metav1.GetOptions{})
		return err == nil
	}
	// pass runs the loop of since until its first pass.
	pass := func(since string) report.Applied {
		t.Helper()
		var p passes
		f := policyReportFlags{enabled: true, interval: time.Hour, since: since, lease: "unused", applied: p.record}
		loop, err := f.loop((&kubeFlags{kubeconfig: kubeconfig}).access(), "prs-system", func() *config.Config { return cfg }, st, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); loop(ctx) }()
		testenv.WaitFor(t, "a pass with --policy-reports-since "+since, 20*time.Second, func() bool { n, _, _ := p.get(); return n > 0 })
		cancel()
		<-done
		_, applied, err := p.get()
		if err != nil {
			t.Fatalf("--policy-reports-since %s: %v", since, err)
		}
		return applied
	}

	if got := pass("30d"); got.Created != 2 || !exists("prs-recent") || !exists("prs-old") {
		t.Fatalf("--policy-reports-since 30d: %+v; want reports in prs-recent and prs-old", got)
	}
	if got := pass("7d"); got.Deleted != 1 || exists("prs-old") || !exists("prs-recent") {
		t.Errorf("--policy-reports-since 7d: %+v; want prs-old's report deleted (its last admission is 10 days old) and prs-recent's kept", got)
	}
}
