package leader_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/image-swapper/image-swapper/internal/leader"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// replica is one Run of an election, recording when its work runs.
type replica struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	terms  int  // how often work started
	active bool // work is running
}

func (r *replica) leading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

func start(t *testing.T, client kubernetes.Interface, ns, name string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, cancel: cancel, done: make(chan struct{})}
	opts := leader.Options{Client: client, Namespace: ns, Name: "image-swapper", Identity: name,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	go func() {
		defer close(r.done)
		err := leader.Run(ctx, opts, func(lctx context.Context) {
			r.mu.Lock()
			r.terms++
			r.active = true
			r.mu.Unlock()
			<-lctx.Done()
			r.mu.Lock()
			r.active = false
			r.mu.Unlock()
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func holder(t *testing.T, client kubernetes.Interface, ns string) string {
	t.Helper()
	l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), "image-swapper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestTheLeaseMovesWhenItsHolderStops runs two replicas against a real
// kube-apiserver: one leads, the other waits; when the leader's context
// ends it releases the Lease, its work has returned, and the other takes
// over.
func TestTheLeaseMovesWhenItsHolderStops(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	client, err := kubernetes.NewForConfig(cp.Config())
	if err != nil {
		t.Fatal(err)
	}
	const ns = "leader-moves"
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := start(t, client, ns, "replica-a")
	testenv.WaitFor(t, "replica-a leads", 10*time.Second, a.leading)
	b := start(t, client, ns, "replica-b")
	// b campaigns for a while, and does not lead.
	time.Sleep(2 * time.Second)
	if b.leading() || !a.leading() {
		t.Fatalf("a leading %v, b leading %v; want a only", a.leading(), b.leading())
	}
	if h := holder(t, client, ns); h != "replica-a" {
		t.Fatalf("Lease held by %q, want replica-a", h)
	}
	stopped := time.Now()
	a.cancel()
	<-a.done // Run returns only once a's work has returned
	if a.leading() {
		t.Fatal("a's work still runs after its Run returned")
	}
	testenv.WaitFor(t, "replica-b takes over", 10*time.Second, b.leading)
	t.Logf("replica-b took over %s after replica-a stopped", time.Since(stopped).Round(time.Millisecond))
	if h := holder(t, client, ns); h != "replica-b" {
		t.Errorf("Lease held by %q, want replica-b", h)
	}
}

// TestWorkStopsWhenTheLeaseIsLost takes the Lease from its holder, as a
// replica that saw it expire would: the holder's work context ends, and
// it campaigns again and leads once the thief's term runs out.
func TestWorkStopsWhenTheLeaseIsLost(t *testing.T) {
	cp := testenv.SharedControlPlane(t)
	client, err := kubernetes.NewForConfig(cp.Config())
	if err != nil {
		t.Fatal(err)
	}
	const ns = "leader-lost"
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := start(t, client, ns, "replica-a")
	testenv.WaitFor(t, "replica-a leads", 10*time.Second, a.leading)
	leases := client.CoordinationV1().Leases(ns)
	l, err := leases.Get(context.Background(), "image-swapper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	thief, seconds := "thief", int32(3)
	now := metav1.NowMicro()
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &thief, &seconds, &now, &now
	if _, err := leases.Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "replica-a's work stops", 10*time.Second, func() bool { return !a.leading() })
	testenv.WaitFor(t, "replica-a leads again after the thief's term", 15*time.Second, a.leading)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.terms != 2 {
		t.Errorf("work started %d times, want 2", a.terms)
	}
}
