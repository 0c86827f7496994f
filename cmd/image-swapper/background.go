package main

import (
	"context"
	"log/slog"
	"sync"

	"k8s.io/client-go/kubernetes"

	"github.com/image-swapper/image-swapper/internal/leader"
)

// background runs serve's loops that one replica at a time should run
// (the sync of mirrored tags, rescans, PolicyReports, the rotation of the
// self-signed certificate): on the holder of the leader
// Lease when serve reaches the Kubernetes API, else in this process, the
// only one. Admission never waits on it.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startBackground starts loops; client is nil without the Kubernetes API.
// Each loop runs until its context ends (the term of the Lease, or serve's
// end) and is started again on the next term.
func startBackground(ctx context.Context, client kubernetes.Interface, namespace, lease string, log *slog.Logger, loops ...func(context.Context)) *background {
	ctx, cancel := context.WithCancel(ctx)
	b := &background{cancel: cancel, done: make(chan struct{})}
	work := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, loop := range loops {
			wg.Go(func() { loop(ctx) })
		}
		wg.Wait()
	}
	go func() {
		defer close(b.done)
		if len(loops) == 0 {
			return
		}
		if client == nil || namespace == "" {
			if client != nil {
				log.Warn("no --namespace for the leader Lease: the background loops run on this replica whatever the others do", "lease", lease)
			}
			work(ctx)
			return
		}
		opts := leader.Options{Client: client, Namespace: namespace, Name: lease, Identity: leaderIdentity(), Logger: log}
		if err := leader.Run(ctx, opts, work); err != nil {
			log.Error("leader election failed: the background loops (sync, rescans, PolicyReports, certificate rotation) do not run", "lease", namespace+"/"+lease, "error", err)
		}
	}()
	return b
}

// stop ends the loops, releasing the Lease if held, and waits for them.
func (b *background) stop() {
	b.cancel()
	<-b.done
}
