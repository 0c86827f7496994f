package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// NamespaceSource knows the labels of namespaces, for namespace selectors
// and CEL conditions.
type NamespaceSource interface {
	// Labels returns the labels of the namespace name. The map is shared
	// and must not be modified.
	Labels(ctx context.Context, name string) (map[string]string, error)
	// HasSynced reports whether the source knows the cluster's namespaces;
	// the server is not ready before.
	HasSynced() bool
	// Run keeps the source current until ctx ends.
	Run(ctx context.Context)
}

// NamespaceInformer is a NamespaceSource backed by a client-go informer:
// admissions read labels from its cache, never with a request per
// admission. A namespace the cache does not know yet (created a moment
// ago, with a Pod right behind it) is read once from the API, so that its
// labels count from its first Pod.
type NamespaceInformer struct {
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   corelisters.NamespaceLister
	log      *slog.Logger
	metrics  *Metrics
}

// missTimeout bounds the read of a namespace the cache does not know, so
// that a slow API server costs an admission little of its budget.
const missTimeout = 2 * time.Second

// NewNamespaceInformer prepares an informer over all namespaces; Run
// starts it. It needs list, watch and get on namespaces.
func NewNamespaceInformer(client kubernetes.Interface, log *slog.Logger, metrics *Metrics) *NamespaceInformer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Only names and labels are read; dropping the rest keeps the cache
	// small in clusters with many namespaces.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(keepNameAndLabels))
	nsInformer := factory.Core().V1().Namespaces()
	return &NamespaceInformer{
		client:   client,
		factory:  factory,
		informer: nsInformer.Informer(),
		lister:   nsInformer.Lister(),
		log:      log,
		metrics:  metrics,
	}
}

// keepNameAndLabels trims a cached object to what Labels reads.
func keepNameAndLabels(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil // tombstones and the like pass unchanged
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:            ns.Name,
		UID:             ns.UID,
		ResourceVersion: ns.ResourceVersion,
		Labels:          ns.Labels,
	}}, nil
}

// Run implements NamespaceSource.
func (n *NamespaceInformer) Run(ctx context.Context) {
	n.factory.Start(ctx.Done())
	<-ctx.Done()
	n.factory.Shutdown()
}

// HasSynced implements NamespaceSource.
func (n *NamespaceInformer) HasSynced() bool { return n.informer.HasSynced() }

// Labels implements NamespaceSource.
func (n *NamespaceInformer) Labels(ctx context.Context, name string) (map[string]string, error) {
	ns, err := n.lister.Get(name)
	if err == nil {
		return ns.Labels, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	if n.metrics != nil {
		n.metrics.namespaceMisses.Inc()
	}
	ctx, cancel := context.WithTimeout(ctx, missTimeout)
	defer cancel()
	live, err := n.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("namespace %s is not in the cache, and reading it failed: %w", name, err)
	}
	n.log.Debug("namespace read from the API: not in the informer cache yet", "namespace", name)
	return live.Labels, nil
}
