package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// memoryMirror is an in-memory mirror: the engine's contract with the
// mirror service, without a registry (the service itself is tested
// against real registries in internal/mirror).
type memoryMirror struct {
	mu       sync.Mutex
	present  map[string]string // target → digest
	queued   []string
	pulls    []authn.Keychain // the keychain of every Enqueue and Ensure
	down     bool             // Present fails, as when the target is unreachable
	copyTime time.Duration    // how long Ensure takes
}

func (m *memoryMirror) Present(_ context.Context, dst reference.Reference) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return "", false, errors.New("dial tcp 127.0.0.1:5000: connection refused")
	}
	d, ok := m.present[dst.String()]
	return d, ok, nil
}

func (m *memoryMirror) Enqueue(src, dst reference.Reference, pull authn.Keychain) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queued = append(m.queued, dst.String())
	m.pulls = append(m.pulls, pull)
}

func (m *memoryMirror) Ensure(ctx context.Context, src, dst reference.Reference, pull authn.Keychain) (string, error) {
	m.mu.Lock()
	m.pulls = append(m.pulls, pull)
	m.mu.Unlock()
	select {
	case <-time.After(m.copyTime):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	digest := "sha256:" + strings.Repeat("f", 64)
	m.present[dst.String()] = digest
	return digest, nil
}

func admitConfig(swap config.SwapPolicy, pin bool) *config.Config {
	return &config.Config{
		SourceRegistries: []string{"docker.io"},
		TargetRegistry:   "registry.example.com",
		Mirroring:        config.Mirroring{Swap: swap, PinDigest: pin, WaitBudget: &metav1.Duration{Duration: time.Hour}},
		Policies:         config.Policies{AllowList: []string{"registry.example.com/*", "docker.io/library/*"}},
	}
}

const mirrored = "registry.example.com/docker.io/library/nginx:1.27"

func TestAdmitExistsSwapsOnlyWhatIsMirrored(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapExists, false))
	m := &memoryMirror{present: map[string]string{}}
	d := e.Admit(context.Background(), Subject{Image: "nginx:1.27"}, m)
	if d.Action != config.ActionKeep || !d.Fallback || d.Target != "nginx:1.27" {
		t.Fatalf("not mirrored yet: action %s target %q fallback %v; want keep nginx:1.27 as fallback", d.Action, d.Target, d.Fallback)
	}
	if len(m.queued) != 1 || m.queued[0] != mirrored {
		t.Fatalf("queued %q, want the copy to %s", m.queued, mirrored)
	}
	m.present[mirrored] = "sha256:" + strings.Repeat("a", 64)
	d = e.Admit(context.Background(), Subject{Image: "nginx:1.27"}, m)
	if d.Action != config.ActionSwap || d.Target != mirrored {
		t.Fatalf("mirrored: action %s target %q; want swap to %s", d.Action, d.Target, mirrored)
	}
}

func TestAdmitFallbackNeverBypassesPolicy(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapExists, false))
	m := &memoryMirror{present: map[string]string{}, down: true}
	// docker.io/bitnami is not in the allowList: kept as the original, it is denied.
	d := e.Admit(context.Background(), Subject{Image: "bitnami/redis:7"}, m)
	if d.Action != config.ActionDeny || !d.Fallback {
		t.Fatalf("action %s fallback %v, want deny after fallback; reasons %q", d.Action, d.Fallback, d.Reasons)
	}
	if !strings.Contains(strings.Join(d.Reasons, " "), "connection refused") {
		t.Errorf("reasons %q do not say the mirror was unreachable", d.Reasons)
	}
	// An allowed original is kept.
	if d := e.Admit(context.Background(), Subject{Image: "nginx:1.27"}, m); d.Action != config.ActionKeep {
		t.Fatalf("allowed original: action %s, want keep", d.Action)
	}
}

func TestAdmitWaitCopiesWithinTheBudget(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapWait, true))
	m := &memoryMirror{present: map[string]string{}}
	d := e.Admit(context.Background(), Subject{Image: "nginx:1.27"}, m)
	want := mirrored + "@sha256:" + strings.Repeat("f", 64)
	if d.Action != config.ActionSwap || d.Target != want {
		t.Fatalf("action %s target %q; want swap to %s", d.Action, d.Target, want)
	}
}

func TestAdmitWaitFallsBackWhenTheBudgetEnds(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapWait, false))
	m := &memoryMirror{present: map[string]string{}, copyTime: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the admission's own deadline has passed
	d := e.Admit(ctx, Subject{Image: "nginx:1.27"}, m)
	if d.Action != config.ActionKeep || !d.Fallback {
		t.Fatalf("action %s fallback %v, want keep as fallback", d.Action, d.Fallback)
	}
}

func TestAdmitAlwaysSwapsAndQueues(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapAlways, false))
	m := &memoryMirror{present: map[string]string{}}
	d := e.Admit(context.Background(), Subject{Image: "nginx:1.27"}, m)
	if d.Action != config.ActionSwap || d.Target != mirrored || len(m.queued) != 1 {
		t.Fatalf("action %s target %q queued %q; want swap and one queued copy", d.Action, d.Target, m.queued)
	}
}

func TestGateJudgesTheImageAsWritten(t *testing.T) {
	e := newTestEngine(t, admitConfig(config.SwapAlways, false))
	s := Subject{Image: "bitnami/redis:7"}
	if d := e.Decide(s); d.Action != config.ActionSwap {
		t.Fatalf("Decide: action %s, want swap", d.Action)
	}
	// Unswapped, docker.io/bitnami is not in the allowList.
	if d := e.Gate(s); d.Action != config.ActionDeny || d.Rule != "policies.allowList" {
		t.Fatalf("Gate: action %s by %q, want deny by policies.allowList", d.Action, d.Rule)
	}
	// What the mutating webhook produced passes.
	if d := e.Gate(Subject{Image: "registry.example.com/docker.io/bitnami/redis:7"}); d.Action != config.ActionKeep {
		t.Fatalf("Gate of the swapped image: action %s, want keep", d.Action)
	}
}

func TestAdmitHandsTheSubjectsPullKeychainToTheMirror(t *testing.T) {
	kc := authn.NewMultiKeychain() // any keychain; the engine only passes it on
	for _, swap := range []config.SwapPolicy{config.SwapExists, config.SwapWait, config.SwapAlways} {
		t.Run("swap "+string(swap)+" copies with the Pod's credentials", func(t *testing.T) {
			e := newTestEngine(t, admitConfig(swap, false))
			m := &memoryMirror{present: map[string]string{}}
			e.Admit(context.Background(), Subject{Image: "nginx:1.27", PullKeychain: kc}, m)
			if len(m.pulls) != 1 || m.pulls[0] != kc {
				t.Errorf("the mirror got keychains %v, want the subject's once", m.pulls)
			}
		})
	}
}
