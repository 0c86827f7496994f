// Package events records the Kubernetes Events of admission: denials,
// warnings, fallbacks and pending scans, as core v1 Events on the Pod's
// owner (a Deployment, StatefulSet, DaemonSet, Job, ReplicaSet …) or on
// the Pod itself, where `kubectl describe` shows them.
//
// Events go through client-go's record.EventBroadcaster and its default
// correlator: an Event repeated within ten minutes is one Event whose count
// grows (a PATCH), more than ten similar ones are aggregated, and each
// involved object gets a token bucket of 25 Events refilled one per five
// minutes. Nothing here ever blocks an admission: PodEvent queues, and
// drops when the queue is full.
package events

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Component is the Events' source, which kubectl shows under "From".
const Component = "image-swapper"

// podTemplateHashLabel is set by the Deployment controller on its
// ReplicaSets and their Pods; the ReplicaSet is "<deployment>-<hash>".
const podTemplateHashLabel = "pod-template-hash"

// Defaults for the zero values of Options.
const (
	DefaultQueue         = 256
	DefaultLookupTimeout = 2 * time.Second
	DefaultPodDelay      = 2 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// Host is the source host, shown beside Component so that replicas can
	// be told apart; the host name when empty.
	Host string
	// Queue is how many Events may wait for their owner to be resolved
	// before new ones are dropped; DefaultQueue when zero.
	Queue int
	// LookupTimeout bounds the GET of a ReplicaSet, to find its
	// Deployment, or of a Pod, for its UID; DefaultLookupTimeout when zero.
	LookupTimeout time.Duration
	// PodDelay is how long after an Event about a Pod being created
	// without an owner (at /mutate, before it has a UID) the Pod is first
	// looked up for its UID, once the API server has stored it (then
	// after twice and four times that); DefaultPodDelay when zero.
	PodDelay time.Duration
	// Logger receives what went wrong; discarded when nil.
	Logger *slog.Logger
	// Registerer, when set, gets the Recorder's metrics.
	Registerer prometheus.Registerer
}

// Recorder records Events about Pods on their owners. It is safe for
// concurrent use; Close stops it.
type Recorder struct {
	client      kubernetes.Interface
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	queue       chan podEvent
	owners      *owners
	timeout     time.Duration
	podDelay    time.Duration
	log         *slog.Logger
	recorded    *prometheus.CounterVec
	dropped     prometheus.Counter

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// podEvent is what PodEvent copies of a Pod: all its owner is resolved
// from, off the admission path.
type podEvent struct {
	namespace, name string
	uid             types.UID
	templateHash    string
	controller      *metav1.OwnerReference
	reason, message string
	// queued is when PodEvent was called; lookups counts the times the
	// Pod was looked up for its UID, and settled says the looking is over.
	queued  time.Time
	lookups int
	settled bool
}

// awaitsUID reports whether ev is about a Pod being created, with a name
// but neither an owner nor a UID yet: kubectl describe selects a Pod's
// Events by UID, so the Pod is looked up once it is stored.
func (ev *podEvent) awaitsUID() bool {
	return ev.controller == nil && ev.uid == "" && ev.name != "" && !ev.settled
}

// New starts a Recorder that writes Events through client.
func New(client kubernetes.Interface, opts Options) *Recorder {
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = DefaultLookupTimeout
	}
	if opts.PodDelay <= 0 {
		opts.PodDelay = DefaultPodDelay
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	ctx, stop := context.WithCancel(context.Background())
	r := &Recorder{
		client:      client,
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component, Host: opts.Host}),
		queue:       make(chan podEvent, opts.Queue),
		owners:      newOwners(),
		timeout:     opts.LookupTimeout,
		podDelay:    opts.PodDelay,
		log:         opts.Logger,
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_events_total",
			Help: "Kubernetes Events handed to the event broadcaster, by reason (before its deduplication and rate limiting).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_events_dropped_total",
			Help: "Kubernetes Events dropped because too many were waiting to be recorded.",
		}),
		stop: stop,
		done: make(chan struct{}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.recorded, r.dropped)
	}
	go r.run(ctx)
	return r
}

// PodEvent queues a Warning Event about pod, in namespace, for its owner;
// it never blocks, and drops the Event when the queue is full.
func (r *Recorder) PodEvent(namespace string, pod *corev1.Pod, reason, message string) {
	ev := podEvent{
		namespace:    namespace,
		name:         pod.Name,
		uid:          pod.UID,
		templateHash: pod.Labels[podTemplateHashLabel],
		reason:       reason,
		message:      message,
		queued:       time.Now(),
	}
	if c := metav1.GetControllerOfNoCopy(pod); c != nil {
		owner := *c
		ev.controller = &owner
	}
	r.enqueue(ev)
}

// enqueue queues ev without blocking, and drops it when the queue is full.
func (r *Recorder) enqueue(ev podEvent) {
	select {
	case r.queue <- ev:
	default:
		r.dropped.Inc()
	}
}

// Close stops resolving owners and shuts the broadcaster down; Events not
// yet written are lost. It is safe to call more than once.
func (r *Recorder) Close() {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		r.broadcaster.Shutdown()
	})
}

func (r *Recorder) run(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			if ev.awaitsUID() {
				uid, again := r.podUID(ctx, ev)
				if again {
					// PodDelay, then twice and four times that: the Pod is
					// stored once /validate has admitted it, which may
					// wait for a scan.
					delay := r.podDelay << ev.lookups
					ev.lookups++
					time.AfterFunc(delay, func() { r.enqueue(ev) })
					continue
				}
				ev.uid, ev.settled = uid, true
			}
			ref := r.involved(ctx, ev)
			if ref == nil {
				r.log.Debug("event not recorded: the Pod has neither a name nor an owner yet", "namespace", ev.namespace, "reason", ev.reason, "message", ev.message)
				continue
			}
			r.recorded.WithLabelValues(ev.reason).Inc()
			r.recorder.Event(ref, corev1.EventTypeWarning, ev.reason, ev.message)
		}
	}
}

// involved is the object an Event is about: the Pod's controller, with a
// Deployment's ReplicaSet taken back to its Deployment, or else the Pod.
// A Pod being created has no UID at /mutate, and at /validate one it keeps
// only if admitted; at /mutate it is looked up for its UID once stored
// (podUID, before involved), and an Event about it is valid either way. A Pod without a
// name (generateName, at /mutate) and without an owner has nothing to be
// recorded on: nil.
func (r *Recorder) involved(ctx context.Context, ev podEvent) *corev1.ObjectReference {
	c := ev.controller
	if c == nil {
		if ev.name == "" {
			return nil
		}
		return &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ev.namespace, Name: ev.name, UID: ev.uid}
	}
	ref := ownerRef(ev.namespace, c)
	// Only a ReplicaSet the Pod's labels say a Deployment made is looked
	// up: one cached GET per ReplicaSet.
	if c.Kind == "ReplicaSet" && apiGroup(c.APIVersion) == "apps" && ev.templateHash != "" && strings.HasSuffix(c.Name, "-"+ev.templateHash) {
		return r.owners.resolve(ctx, ref, r.lookup)
	}
	return ref
}

// lookup reads a ReplicaSet's controller: its Deployment.
func (r *Recorder) lookup(ctx context.Context, rs *corev1.ObjectReference) (*corev1.ObjectReference, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	got, err := r.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		r.log.Warn("recording an Event on the ReplicaSet: its Deployment is unknown", "namespace", rs.Namespace, "replicaSet", rs.Name, "error", err)
		return nil, err
	}
	if got.UID != rs.UID {
		// Deleted and made again since the Pod was made: not its owner.
		return nil, nil
	}
	c := metav1.GetControllerOfNoCopy(got)
	if c == nil {
		return nil, nil
	}
	return ownerRef(rs.Namespace, c), nil
}

// podCreatedSlack is how much earlier than its Event a Pod may say it was
// created (its creationTimestamp has whole seconds, from the API server's
// clock) and still be the Pod the Event is about.
const podCreatedSlack = 5 * time.Second

// maxPodLookups bounds the lookups of a Pod for its UID.
const maxPodLookups = 3

// podUID is the UID of the Pod ev is about, once stored; again says to
// look later (the Pod is not stored yet). It is "" when the Pod never
// came (denied), the Pod could not be read, or it is an older Pod of that
// name (whose creation the Event's request then failed): the Event is
// recorded by name.
func (r *Recorder) podUID(ctx context.Context, ev podEvent) (uid types.UID, again bool) {
	if ev.lookups == 0 {
		return "", true
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	pod, err := r.client.CoreV1().Pods(ev.namespace).Get(ctx, ev.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", ev.lookups < maxPodLookups
	case err != nil:
		r.log.Warn("recording an Event on a Pod without its UID: the Pod could not be read (kubectl describe pod does not list it; kubectl events --for pod/NAME does)",
			"namespace", ev.namespace, "pod", ev.name, "error", err)
		return "", false
	case pod.CreationTimestamp.Time.Before(ev.queued.Add(-podCreatedSlack)):
		return "", false
	}
	return pod.UID, false
}

// ownerRef is the reference of an owner in namespace.
func ownerRef(namespace string, o *metav1.OwnerReference) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: o.Kind, APIVersion: o.APIVersion, Namespace: namespace, Name: o.Name, UID: o.UID}
}

// apiGroup is the group of an apiVersion ("apps/v1" → "apps", "v1" → "").
func apiGroup(apiVersion string) string {
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return group
}
