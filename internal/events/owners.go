package events

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// How long a ReplicaSet's controller is remembered: a ReplicaSet keeps its
// Deployment for life, so a found one is kept long; a failed lookup
// (Forbidden, NotFound, a timeout) is retried a minute later.
const (
	ownerTTL       = 30 * time.Minute
	failedOwnerTTL = time.Minute
	maxOwners      = 4096
)

// owners remembers the controllers of ReplicaSets, by ReplicaSet UID. Only
// the Recorder's one goroutine uses it.
type owners struct {
	entries map[types.UID]ownerEntry
	now     func() time.Time
}

type ownerEntry struct {
	// ref is the ReplicaSet's controller, or the ReplicaSet itself when it
	// has none or the lookup failed.
	ref     *corev1.ObjectReference
	expires time.Time
}

func newOwners() *owners {
	return &owners{entries: map[types.UID]ownerEntry{}, now: time.Now}
}

// resolve returns the controller of rs, from memory or through lookup; rs
// itself when lookup finds none or fails.
func (o *owners) resolve(ctx context.Context, rs *corev1.ObjectReference, lookup func(context.Context, *corev1.ObjectReference) (*corev1.ObjectReference, error)) *corev1.ObjectReference {
	now := o.now()
	if e, ok := o.entries[rs.UID]; ok && now.Before(e.expires) {
		return e.ref
	}
	ref, err := lookup(ctx, rs)
	ttl := ownerTTL
	if err != nil {
		ttl = failedOwnerTTL
	}
	if ref == nil {
		ref = rs
	}
	if rs.UID == "" {
		return ref
	}
	if len(o.entries) >= maxOwners {
		o.evict(now)
	}
	o.entries[rs.UID] = ownerEntry{ref: ref, expires: now.Add(ttl)}
	return ref
}

// evict drops the expired entries, or all of them when none has expired.
func (o *owners) evict(now time.Time) {
	for uid, e := range o.entries {
		if !now.Before(e.expires) {
			delete(o.entries, uid)
		}
	}
	if len(o.entries) >= maxOwners {
		clear(o.entries)
	}
}
