package policyapi

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/image-swapper/image-swapper/internal/engine"
)

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Logger *slog.Logger
	// DiscoveryInterval is how often the watcher looks for the CRDs while
	// they are not installed (default 30s).
	DiscoveryInterval time.Duration
	// Resync is the informers' resync period, which also refreshes
	// statuses as exceptions expire (default 10m).
	Resync time.Duration
}

// Watcher keeps the cluster's ClusterImagePolicies and ImagePolicies in
// informer caches and merges them with the configuration per namespace
// (Engine), so that a change takes effect as soon as its watch event
// arrives; WriteStatuses writes each object's status. It needs list and
// watch on both resources, and update on their status to write it.
type Watcher struct {
	client dynamic.Interface
	disco  discovery.DiscoveryInterface
	opts   WatcherOptions
	log    *slog.Logger

	factory  dynamicinformer.DynamicSharedInformerFactory
	clusters cache.SharedIndexInformer
	locals   cache.SharedIndexInformer

	// known is set once discovery has answered; installed says whether
	// the CRDs were there.
	known, installed atomic.Bool
	// version counts the changes the informers have seen.
	version atomic.Uint64
	// changed wakes the status writer.
	changed chan struct{}

	build sync.Mutex // serialises building a state
	state atomic.Pointer[state]
}

// state is what the policies make of one configuration at one version.
type state struct {
	base    *engine.Engine
	version uint64
	cluster *Cluster
	// invalid are objects that do not convert into their type, by key
	// (namespace/name).
	invalid map[string]error
	locals  map[string][]ImagePolicy // by namespace
	// generations are those of the objects merged, by key, for the
	// status writer.
	generations map[string]int64

	mu         sync.Mutex
	namespaces map[string]*Namespace
}

// NewWatcher prepares informers over both resources; Run starts them.
func NewWatcher(client dynamic.Interface, disco discovery.DiscoveryInterface, opts WatcherOptions) *Watcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DiscoveryInterval <= 0 {
		opts.DiscoveryInterval = 30 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	w := &Watcher{client: client, disco: disco, opts: opts, log: opts.Logger, changed: make(chan struct{}, 1)}
	w.factory = dynamicinformer.NewDynamicSharedInformerFactory(client, opts.Resync)
	w.clusters = w.factory.ForResource(ClusterImagePolicies).Informer()
	w.locals = w.factory.ForResource(ImagePolicies).Informer()
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { w.touch() },
		UpdateFunc: func(old, cur any) {
			// A change of status or metadata alone (the status writer's
			// own updates) changes no policy.
			o, ok1 := old.(*unstructured.Unstructured)
			c, ok2 := cur.(*unstructured.Unstructured)
			if ok1 && ok2 && o.GetGeneration() == c.GetGeneration() && o.GetGeneration() != 0 {
				return
			}
			w.touch()
		},
		DeleteFunc: func(any) { w.touch() },
	}
	_, _ = w.clusters.AddEventHandler(notify)
	_, _ = w.locals.AddEventHandler(notify)
	return w
}

func (w *Watcher) touch() {
	w.version.Add(1)
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// HasSynced reports whether the watcher knows the cluster's policies: the
// CRDs are not installed, or the caches are synced. The webhook is not
// ready before, so that no admission misses a namespace's policy.
func (w *Watcher) HasSynced() bool {
	if !w.known.Load() {
		return false
	}
	return !w.installed.Load() || w.clusters.HasSynced() && w.locals.HasSynced()
}

// Run waits for the CRDs to be installed, then keeps the caches current
// until ctx ends. base returns the engine of the configuration in force.
func (w *Watcher) Run(ctx context.Context, base func() *engine.Engine) {
	if !w.waitForCRDs(ctx) {
		return
	}
	w.factory.Start(ctx.Done())
	defer w.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), w.clusters.HasSynced, w.locals.HasSynced) {
		return
	}
	w.log.Info("watching image policies", "clusterImagePolicies", len(w.clusters.GetStore().ListKeys()), "imagePolicies", len(w.locals.GetStore().ListKeys()))
	// Exceptions expire without an event: the policies are merged anew
	// every Resync.
	refresh := time.NewTicker(w.opts.Resync)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			w.touch()
		}
	}
}

// WriteStatuses keeps each object's status (its conditions and
// observedGeneration) what the merge with the configuration in force
// makes of it, until ctx ends: once the caches are synced, after each
// change, and within a second of a configuration change. One replica at
// a time runs it, the holder of the leader Lease, so that replicas do not
// race to write the same status. Run must be running.
func (w *Watcher) WriteStatuses(ctx context.Context, base func() *engine.Engine) {
	// The configuration can change without an event here; a tick
	// notices it.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last *state
	for {
		if w.HasSynced() && w.installed.Load() {
			if st := w.current(base()); st != last {
				last = st
				if !w.writeStatuses(ctx, st) {
					last = nil // try again at the next tick
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		case <-tick.C:
		}
	}
}

// waitForCRDs returns true once both resources are served, false when ctx
// ends first.
func (w *Watcher) waitForCRDs(ctx context.Context) bool {
	logged := false
	for {
		ok, err := w.served()
		switch {
		case err != nil:
			w.log.Warn("cannot tell whether the image policy CRDs are installed; asking again", "groupVersion", APIVersion, "error", err)
		case ok:
			w.installed.Store(true)
			w.known.Store(true)
			return true
		default:
			w.known.Store(true)
			if !logged {
				logged = true
				w.log.Info("the image policy CRDs are not installed: ClusterImagePolicies and ImagePolicies do not apply until they are", "groupVersion", APIVersion)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(w.opts.DiscoveryInterval):
		}
	}
}

// served reports whether the API serves both resources.
func (w *Watcher) served() (bool, error) {
	list, err := w.disco.ServerResourcesForGroupVersion(APIVersion)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	found := 0
	for _, r := range list.APIResources {
		if r.Name == ClusterImagePolicies.Resource || r.Name == ImagePolicies.Resource {
			found++
		}
	}
	return found == 2, nil
}

// Engine returns the engine deciding in namespace ns: base merged with
// the ClusterImagePolicies and the namespace's ImagePolicies. Engines
// are compiled once per configuration, policy change and namespace.
func (w *Watcher) Engine(base *engine.Engine, ns string) *engine.Engine {
	return w.Namespace(base, ns).Engine
}

// Namespace is the policy in force in namespace ns, for base.
func (w *Watcher) Namespace(base *engine.Engine, ns string) *Namespace {
	return w.current(base).namespace(ns)
}

// current returns the state of base at the informers' version, building
// it when either changed.
func (w *Watcher) current(base *engine.Engine) *state {
	v := w.version.Load()
	if st := w.state.Load(); st != nil && st.base == base && st.version == v {
		return st
	}
	w.build.Lock()
	defer w.build.Unlock()
	if st := w.state.Load(); st != nil && st.base == base && st.version == v {
		return st
	}
	st := w.newState(base, v)
	w.state.Store(st)
	return st
}

func (w *Watcher) newState(base *engine.Engine, v uint64) *state {
	st := &state{
		base: base, version: v,
		invalid:     map[string]error{},
		locals:      map[string][]ImagePolicy{},
		generations: map[string]int64{},
		namespaces:  map[string]*Namespace{},
	}
	var clusters []ClusterImagePolicy
	for _, obj := range w.clusters.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		st.generations[objectKey(u)] = u.GetGeneration()
		p, err := fromUnstructured[ClusterImagePolicy](u)
		if err != nil {
			st.invalid[objectKey(u)] = err
			continue
		}
		clusters = append(clusters, p)
	}
	for _, obj := range w.locals.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		st.generations[objectKey(u)] = u.GetGeneration()
		p, err := fromUnstructured[ImagePolicy](u)
		if err != nil {
			st.invalid[objectKey(u)] = err
			continue
		}
		st.locals[p.Namespace] = append(st.locals[p.Namespace], p)
	}
	c, err := MergeCluster(base.Config(), clusters, base.Options()...)
	if err != nil {
		// base compiled once already, so this does not happen; deciding
		// with base alone keeps admissions going.
		w.log.Error("the configuration does not compile with the policy objects' options; deciding without them", "error", err)
		c = &Cluster{cfg: base.Config(), engine: base, opts: base.Options(), Outcomes: map[string]Outcome{}}
	}
	st.cluster = c
	return st
}

// namespace returns the namespace's policy, merging it on first use.
func (st *state) namespace(ns string) *Namespace {
	locals := st.locals[ns]
	if len(locals) == 0 {
		return &Namespace{Name: ns, Engine: st.cluster.engine}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if n, ok := st.namespaces[ns]; ok {
		return n
	}
	n := st.cluster.Namespace(ns, locals, time.Now())
	st.namespaces[ns] = n
	return n
}

// objectKey names a cached object: "ClusterImagePolicy/base",
// "ImagePolicy/team-a/strict".
func objectKey(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return objectName(KindClusterImagePolicy, "", u.GetName())
	}
	return objectName(KindImagePolicy, u.GetNamespace(), u.GetName())
}

// writeStatuses brings the status of every cached object up to date with
// what st made of it. Objects st does not know at their generation are
// passed over: a newer state, with their change, follows. It reports
// whether every status is written.
func (w *Watcher) writeStatuses(ctx context.Context, st *state) bool {
	done := true
	now := metav1.Now()
	var objects []*unstructured.Unstructured
	for _, obj := range slices.Concat(w.clusters.GetStore().List(), w.locals.GetStore().List()) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			objects = append(objects, u)
		}
	}
	for _, u := range objects {
		key := objectKey(u)
		if gen, ok := st.generations[key]; !ok || gen != u.GetGeneration() {
			continue
		}
		var o Outcome
		switch {
		case st.invalid[key] != nil:
			o = Outcome{Reason: ReasonInvalid, Message: st.invalid[key].Error()}
		case u.GetNamespace() == "":
			o = st.cluster.Outcomes[u.GetName()]
		default:
			o = st.namespace(u.GetNamespace()).Outcomes[u.GetName()]
		}
		if err := w.writeStatus(ctx, u, o, now); err != nil {
			done = false
			if !apierrors.IsConflict(err) {
				w.log.Warn("cannot write the status of an image policy", "object", key, "error", err)
			}
		}
	}
	return done
}

func (w *Watcher) writeStatus(ctx context.Context, u *unstructured.Unstructured, o Outcome, now metav1.Time) error {
	current, _ := fromUnstructured[Status](&unstructured.Unstructured{Object: statusOf(u)})
	next, changed := NextStatus(current, o, u.GetGeneration(), now)
	if !changed {
		return nil
	}
	out, err := withStatus(u, next)
	if err != nil {
		return err
	}
	var res dynamic.ResourceInterface = w.client.Resource(ClusterImagePolicies)
	if u.GetNamespace() != "" {
		res = w.client.Resource(ImagePolicies).Namespace(u.GetNamespace())
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = res.UpdateStatus(ctx, out, metav1.UpdateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil // deleted: its event is on its way
	case err != nil:
		// A conflict: a newer version is on its way through the informer.
		return fmt.Errorf("updating status: %w", err)
	}
	w.log.Info("image policy status updated", "kind", u.GetKind(), "namespace", u.GetNamespace(), "name", u.GetName(), "accepted", o.Accepted, "reason", o.Reason)
	return nil
}

func statusOf(u *unstructured.Unstructured) map[string]any {
	s, _ := u.Object["status"].(map[string]any)
	if s == nil {
		return map[string]any{}
	}
	return s
}
