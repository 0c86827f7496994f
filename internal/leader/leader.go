// Package leader runs work on one replica at a time: the holder of a
// coordination.k8s.io Lease, elected with client-go's leaderelection.
// Background loops (PolicyReports, and later sync, rescans and certificate
// rotation) run under it; admission never waits on it.
package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of the zero Options durations: client-go's usual 15s, 10s and
// 2s.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Options configure an election.
type Options struct {
	// Client reaches the API server; Namespace and Name name the Lease.
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Identity names this replica in the Lease (the Pod's name, made
	// unique).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are leaderelection's.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Logger        *slog.Logger
}

// Run campaigns for the Lease until ctx ends. Each time this replica
// becomes the leader, it runs work with a context that ends when the
// Lease is lost (or ctx ends), waits for work to return, and campaigns
// again. On ctx's end it releases a held Lease, so another replica takes
// over at once rather than after LeaseDuration. It returns when ctx has
// ended and work has returned.
func Run(ctx context.Context, opts Options, work func(ctx context.Context)) error {
	if opts.Client == nil || opts.Namespace == "" || opts.Name == "" || opts.Identity == "" {
		return errors.New("leader election needs a client, the Lease's namespace and name, and an identity")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock := &watchedLock{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
		Client:     opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}}
	for ctx.Err() == nil {
		done := make(chan struct{})
		lock.acquired.Store(false)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   orDefault(opts.LeaseDuration, DefaultLeaseDuration),
			RenewDeadline:   orDefault(opts.RenewDeadline, DefaultRenewDeadline),
			RetryPeriod:     orDefault(opts.RetryPeriod, DefaultRetryPeriod),
			ReleaseOnCancel: true,
			Name:            opts.Namespace + "/" + opts.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				// leaderelection runs this in a goroutine of its own and
				// cancels its context when the Lease is lost; done says
				// work has returned.
				OnStartedLeading: func(lctx context.Context) {
					defer close(done)
					log.Info("leading", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
					work(lctx)
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(id string) {
					if id != opts.Identity {
						log.Info("another replica leads", "lease", opts.Namespace+"/"+opts.Name, "leader", id)
					}
				},
			},
		})
		if err != nil {
			return err
		}
		// Run returns once leadership is lost or ctx ends. It started
		// OnStartedLeading (in a goroutine that may not have run yet) if
		// and only if it acquired the Lease.
		le.Run(ctx)
		if lock.acquired.Load() {
			<-done
			log.Info("stopped leading", "lease", opts.Namespace+"/"+opts.Name, "identity", opts.Identity)
		}
	}
	return nil
}

// watchedLock notes when this replica took the Lease: a Create or Update
// that succeeded with its identity as the holder.
type watchedLock struct {
	resourcelock.Interface
	acquired atomic.Bool
}

func (l *watchedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, r)
	l.note(r, err)
	return err
}

func (l *watchedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, r)
	l.note(r, err)
	return err
}

func (l *watchedLock) note(r resourcelock.LeaderElectionRecord, err error) {
	if err == nil && r.HolderIdentity == l.Identity() {
		l.acquired.Store(true)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
