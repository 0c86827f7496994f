package policyapi

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/image-swapper/image-swapper/internal/engine"
)

// TestWatcherWithoutCRDs: without the CRDs the server is ready (there is
// no policy to miss) and decides by the configuration; while discovery
// fails it is not ready.
func TestWatcherWithoutCRDs(t *testing.T) {
	base, err := engine.New(baseConfig(t, mirrorConfig))
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	kube := fake.NewClientset()
	var failing atomic.Bool
	failing.Store(true)
	kube.PrependReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	w := NewWatcher(dyn, kube.Discovery(), WatcherOptions{DiscoveryInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func() *engine.Engine { return base })
	}()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(50 * time.Millisecond)
	if w.HasSynced() {
		t.Fatal("synced while discovery fails")
	}
	failing.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for !w.HasSynced() {
		if time.Now().After(deadline) {
			t.Fatal("not synced without the CRDs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := decide(w.Engine(base, "team-a"), "team-a", "docker.io/unknown/x"); !d.Denied() {
		t.Errorf("the configuration's denyList does not apply: %s", d.LastReason())
	}
}
