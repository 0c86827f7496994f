package ledger_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/store/storetest"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// TestAReplicaKilledMidCopyIsTakenOver: two serve processes on one
// PostgreSQL share a copy through its claim. Replica A wins the claim and
// starts copying; a proxy in front of the target holds its manifest PUTs,
// so that A has uploaded the layers but the target has no image yet.
// Replica B, asked for the same image, finds the claim held and waits.
// A is killed with SIGKILL, as a crash or the OOM killer would: it
// releases nothing, and its claim lapses when its lease runs out. B then
// takes the copy over (claims_total{kind="copy",result="taken_over"} is 1)
// and finishes it: the target's tag holds the source's digest, written by
// exactly one manifest PUT of the tag, and B swaps the image from then on.
func TestAReplicaKilledMidCopyIsTakenOver(t *testing.T) {
	pg := storetest.StartPostgres(t)
	f := newFixture(t, postgresStore, "IMAGE_SWAPPER_DATABASE_URL="+pg.DSN())
	src := registrytest.New(t)
	dst := registrytest.NewProxy(t, registrytest.New(t).Host)
	want := src.PushIndex(t, "shop/app:1.0", 3, "linux/amd64", "linux/arm64")
	// swap: wait with a short budget: each admission waits a little for
	// the copy, is answered unswapped when it has not landed, and leaves
	// the copy running in the background.
	config := fmt.Sprintf(`sourceRegistries: [%q]
targetRegistry: %q
mirroring:
  swap: wait
  waitBudget: 2s
store:
%s
`, src.Host, dst.Host, postgresStore)
	if err := os.WriteFile(f.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	source := src.Host + "/shop/app:1.0"
	targetRepo := strings.ReplaceAll(src.Host, ":", "_") + "/shop/app"

	// Until release closes, the proxy holds every manifest PUT: the copy
	// that sends one has pushed the layers and is stuck before the image
	// exists at the target. A held request ends when release closes or
	// its client goes away, with a 503 that no live client reads.
	var (
		reached     = make(chan struct{})
		reachedOnce sync.Once
		release     = make(chan struct{})
		releaseOnce sync.Once
		held        atomic.Int32
	)
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before the proxy closes, which waits for its handlers
	dst.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		select {
		case <-release:
			return false
		default:
		}
		held.Add(1)
		reachedOnce.Do(func() { close(reached) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "held by the test", http.StatusServiceUnavailable)
		return true
	})

	a := f.startServe(t, "serve A", 0)
	b := f.startServe(t, "serve B", 0)
	const (
		won       = `image_swapper_claims_total{kind="copy",result="won"}`
		lost      = `image_swapper_claims_total{kind="copy",result="lost"}`
		takenOver = `image_swapper_claims_total{kind="copy",result="taken_over"}`
	)

	// A copies, and gets stuck at its first manifest PUT.
	answerA := background(func() admitted { return post(a, "/mutate", "00000000-0000-4000-8000-00000000000a", source) })
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatalf("A's copy sent no manifest PUT to the target; it sent: %q", dst.Requests())
	}
	if n := countPuts(dst.Requests(), "/manifests/1.0"); n != 0 {
		t.Fatalf("the target got %d manifest PUTs of the tag before A was killed; want none (the proxy holds them)", n)
	}
	if v := a.metric(t, won); v != 1 {
		t.Fatalf("A: %s = %v; want 1 (A holds the copy's claim)", won, v)
	}

	// B is asked for the same image and waits for A's claim.
	answerB := background(func() admitted { return post(b, "/mutate", "00000000-0000-4000-8000-00000000000b", source) })
	if err := testenv.Eventually(60*time.Second, 100*time.Millisecond, func() error {
		v, _, err := b.sample(lost)
		if err == nil && v != 1 {
			err = fmt.Errorf("%s = %v; want 1", lost, v)
		}
		return err
	}); err != nil {
		t.Fatalf("B did not find A's claim held: %v", err)
	}
	for _, ans := range []struct {
		name string
		admitted
	}{{"A", answerA()}, {"B", answerB()}} {
		switch {
		case ans.err != nil:
			t.Fatalf("%s's admission: %v", ans.name, ans.err)
		case !strings.Contains(ans.body, `"allowed":true`) || strings.Contains(ans.body, `"patch":`):
			t.Fatalf("%s's admission was answered %.300s; want allowed and unswapped (the copy has not landed within waitBudget)", ans.name, ans.body)
		}
	}

	// A dies mid-copy; the proxy lets writes through again.
	killed := time.Now()
	a.proc.Kill()
	releaseAll()
	t.Logf("A killed with %d manifest PUT(s) held; %d requests reached the target", held.Load(), len(dst.Requests()))

	// B takes the copy over once A's claim lapses, and finishes it.
	if err := testenv.Eventually(90*time.Second, 250*time.Millisecond, func() error {
		v, ok, err := b.sample(takenOver)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("B has no %s sample yet", takenOver)
		case v != 1:
			return fmt.Errorf("%s = %v; want 1", takenOver, v)
		}
		if got := dst.Digest(t, targetRepo+":1.0"); got != want {
			return fmt.Errorf("the target's tag holds %q; want the source's %s", got, want)
		}
		return nil
	}); err != nil {
		t.Fatalf("B did not take A's copy over: %v", err)
	}
	t.Logf("B took the copy over and finished it %s after A was killed", time.Since(killed).Round(100*time.Millisecond))
	if n := countPuts(dst.Requests(), "/manifests/1.0"); n != 1 {
		t.Errorf("the target got %d manifest PUTs of the tag; want exactly 1, B's", n)
	}
	if v := b.metric(t, lost); v != 1 {
		t.Errorf("B: %s = %v; want 1", lost, v)
	}
	if v, _, err := b.sample(won); err != nil || v != 0 {
		t.Errorf("B: %s = %v (%v); want 0: B never won the free claim, it took it over", won, v, err)
	}

	// From now on B swaps the image.
	later := post(b, "/mutate", "00000000-0000-4000-8000-0000000000bb", source)
	if later.err != nil {
		t.Fatalf("B's later admission: %v", later.err)
	}
	if !strings.Contains(later.body, `"patch":`) {
		t.Errorf("B's admission after the takeover was not swapped: %.300s", later.body)
	}
}

// admitted is the answer to one admission: the body of a 200, or err.
type admitted struct {
	body string
	err  error
}

// post sends the AdmissionReview of a Pod running image to s's endpoint
// (/mutate or /validate).
func post(s *server, endpoint, uid, image string) admitted {
	resp, err := s.client.Post("https://"+s.addr+endpoint, "application/json", bytes.NewReader(review(uid, image)))
	if err != nil {
		return admitted{err: fmt.Errorf("%s %s: %w", s.name, endpoint, err)}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return admitted{err: fmt.Errorf("%s %s: %w", s.name, endpoint, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return admitted{err: fmt.Errorf("%s %s: %s: %s", s.name, endpoint, resp.Status, out)}
	}
	return admitted{body: string(out)}
}
