// Package selfsigned is a webhook.CertificateSource that needs nothing but
// the Kubernetes API: it creates its own CA and serving certificate, keeps
// them in a kubernetes.io/tls Secret that every replica shares, keeps the
// caBundle of the server's Mutating- and ValidatingWebhookConfiguration
// current, and rotates both before they expire, without a restart and
// without a failed handshake.
//
// One replica rotates: the holder of the leader Lease runs Rotate, and
// every replica runs Run, which serves what the Secret holds. A replica
// that starts when the Secret holds nothing it could serve makes it, as
// admission never waits on the Lease. Writers agree through the Secret:
// each writes it only with the resourceVersion it read, so when several
// start at once (or a Lease holder hands over mid-step) one write wins and
// the others read the winner's certificate and use it.
//
// RBAC the server needs (docs/operations.md has the manifests):
//
//   - in its own namespace, on Secrets: get and update (may be limited to
//     the Secret's name with resourceNames) and create (cannot be limited
//     by name: Kubernetes checks create before the object has one);
//   - cluster-wide, on mutatingwebhookconfigurations and
//     validatingwebhookconfigurations of admissionregistration.k8s.io:
//     get, list, watch and patch, which resourceNames may limit to the
//     configurations' name (list and watch select it by metadata.name).
package selfsigned

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Defaults for the zero values of Options.
const (
	DefaultSecretName    = "image-swapper-tls"
	DefaultService       = "image-swapper"
	DefaultWebhookConfig = "image-swapper"
	DefaultCALifetime    = 5 * 365 * 24 * time.Hour
	DefaultCertLifetime  = 365 * 24 * time.Hour
	DefaultSwitchDelay   = 5 * time.Minute
	DefaultOverlap       = 24 * time.Hour
	DefaultInterval      = time.Minute
)

// fieldManager names this package in the objects' managedFields.
const fieldManager = "image-swapper-selfsigned"

// maxAttempts bounds how often Sync starts over after another writer
// changed the Secret or a webhook configuration under it.
const maxAttempts = 5

// Options configure a Source. Namespace is required.
type Options struct {
	// Namespace holds the Secret and the Service.
	Namespace string
	// SecretName is the kubernetes.io/tls Secret that holds the CA and
	// the serving certificate (default DefaultSecretName).
	SecretName string
	// Service is the name of the webhook's Service; the serving
	// certificate is for SERVICE.NAMESPACE.svc and
	// SERVICE.NAMESPACE.svc.cluster.local (default DefaultService).
	Service string
	// WebhookConfig names the MutatingWebhookConfiguration and the
	// ValidatingWebhookConfiguration whose caBundle the Source keeps
	// current (default DefaultWebhookConfig).
	WebhookConfig string
	// ExtraNames are more DNS names or IP addresses for the serving
	// certificate.
	ExtraNames []string
	// CALifetime and CertLifetime are the validity of a new CA and
	// serving certificate; each is renewed when two thirds of it have
	// passed.
	CALifetime   time.Duration
	CertLifetime time.Duration
	// SwitchDelay is how long after a new CA joins the bundle the serving
	// certificate switches to it (once the webhook configurations carry
	// it), so that every API server has seen the new bundle.
	SwitchDelay time.Duration
	// Overlap is how long after the switch the old CA stays in the
	// bundle, so that every replica has read the new serving certificate.
	Overlap time.Duration
	// Interval between checks when nothing happens; a change of a webhook
	// configuration is seen at once through a watch.
	Interval time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logger receives rotations and errors.
	Logger *slog.Logger
	// Registerer, if set, receives the Source's metrics.
	Registerer prometheus.Registerer
}

// Source is a webhook.CertificateSource backed by a Secret it manages.
type Source struct {
	client kubernetes.Interface
	opts   Options
	names  names
	log    *slog.Logger
	// current is what the Source serves.
	current atomic.Pointer[material]
	metrics *metrics
}

// New checks opts, then reads the Secret and serves its certificate. When
// the Secret holds none this replica could serve now (none yet, expired,
// or for other names), New makes it and publishes the caBundle at once
// (Sync), so that the Source has a certificate to serve when it returns.
// An error says what is wrong: bad options, or an API request that failed
// (with the RBAC the server needs when it was forbidden).
func New(ctx context.Context, client kubernetes.Interface, opts Options) (*Source, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	n, err := opts.names()
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Source{client: client, opts: opts, names: n, log: opts.Logger, metrics: met}
	if err := s.Refresh(ctx); err == nil {
		return s, nil
	} else if !errors.Is(err, errNotServable) {
		return nil, err
	}
	if err := s.Sync(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (o *Options) complete() error {
	if o.Namespace == "" {
		return errors.New("self-signed certificate: the namespace of the Secret and the Service is required")
	}
	if o.SecretName == "" {
		o.SecretName = DefaultSecretName
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.WebhookConfig == "" {
		o.WebhookConfig = DefaultWebhookConfig
	}
	defaults := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CA lifetime", &o.CALifetime, DefaultCALifetime},
		{"certificate lifetime", &o.CertLifetime, DefaultCertLifetime},
		{"switch delay", &o.SwitchDelay, DefaultSwitchDelay},
		{"overlap", &o.Overlap, DefaultOverlap},
		{"interval", &o.Interval, DefaultInterval},
	}
	for _, d := range defaults {
		if *d.v < 0 {
			return fmt.Errorf("self-signed certificate: %s %s: want a positive duration", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// names are the Service's DNS names and the extra names.
func (o *Options) names() (names, error) {
	svc := o.Service + "." + o.Namespace + ".svc"
	n := names{dns: []string{svc, svc + ".cluster.local"}}
	for _, name := range o.ExtraNames {
		if ip := net.ParseIP(name); ip != nil {
			n.ips = append(n.ips, ip)
			continue
		}
		var problems []string
		if strings.HasPrefix(name, "*.") {
			problems = validation.IsWildcardDNS1123Subdomain(name)
		} else {
			problems = validation.IsDNS1123Subdomain(name)
		}
		if len(problems) > 0 {
			return names{}, fmt.Errorf("self-signed certificate: extra name %q: want a DNS name or an IP address: %s", name, strings.Join(problems, "; "))
		}
		n.dns = append(n.dns, name)
	}
	return n, nil
}

// GetCertificate implements webhook.CertificateSource: it returns the
// serving certificate of the Secret as last read.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := s.current.Load()
	if m == nil {
		return nil, errors.New("self-signed certificate: not loaded yet")
	}
	return m.cert, nil
}

// Run implements webhook.CertificateSource: every Interval it reads the
// Secret again and serves the certificate it holds, which the Lease
// holder's Rotate keeps current, until ctx ends. It never writes.
func (s *Source) Run(ctx context.Context) {
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.metrics.syncErrors.Inc()
			s.log.Error("self-signed certificate: reading the Secret failed; serving the certificate in use", "error", err)
		}
	}
}

// errNotServable says the Secret holds no certificate to serve now.
var errNotServable = errors.New("no certificate to serve")

// Refresh reads the Secret once and serves its certificate, if it is one
// this replica can serve now; otherwise the certificate in use stays and
// the error (errNotServable) says why.
func (s *Source) Refresh(ctx context.Context) error {
	sec, err := s.readSecret(ctx)
	if err != nil {
		return err
	}
	if sec == nil {
		return fmt.Errorf("self-signed certificate: Secret %s/%s does not exist: %w", s.opts.Namespace, s.opts.SecretName, errNotServable)
	}
	m, err := parseMaterial(sec.Data)
	if err != nil {
		return fmt.Errorf("self-signed certificate: Secret %s/%s: %w: %v", s.opts.Namespace, s.opts.SecretName, errNotServable, err)
	}
	now := s.opts.Now()
	switch leaf, ca := m.leaf(), m.signer(); {
	case !now.Before(ca.NotAfter):
		return fmt.Errorf("self-signed certificate: Secret %s/%s: %w: its CA expired at %s", s.opts.Namespace, s.opts.SecretName, errNotServable, ca.NotAfter.UTC().Format(time.RFC3339))
	case !now.Before(leaf.NotAfter) || now.Before(leaf.NotBefore):
		return fmt.Errorf("self-signed certificate: Secret %s/%s: %w: it is valid from %s to %s", s.opts.Namespace, s.opts.SecretName, errNotServable,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	case !s.names.match(leaf):
		return fmt.Errorf("self-signed certificate: Secret %s/%s: %w: it is for %s, want %s", s.opts.Namespace, s.opts.SecretName, errNotServable, certNames(leaf), s.names)
	}
	s.use(m)
	return nil
}

// Rotate keeps the Secret and the webhook configurations' caBundle
// current: it syncs at once, then every Interval and whenever one of the
// configurations changes (a helm upgrade that re-creates it, someone who
// edits its caBundle), until ctx ends. One replica at a time runs it: the
// holder of the leader Lease.
func (s *Source) Rotate(ctx context.Context) {
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	poke()
	// Only the configurations of that name: RBAC limited to it by
	// resourceNames allows list and watch with this field selector.
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.WebhookConfig).String()
	}))
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	api := factory.Admissionregistration().V1()
	for _, inf := range []cache.SharedIndexInformer{api.MutatingWebhookConfigurations().Informer(), api.ValidatingWebhookConfigurations().Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			// Only a stopped informer refuses; the ticker still syncs.
			s.log.Error("self-signed certificate: watching the webhook configurations", "error", err)
		}
	}
	factory.Start(ctx.Done())
	// Shutdown waits for the informers, which stop when ctx ends; the
	// deferred call runs after that.
	defer factory.Shutdown()

	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-trigger:
		}
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.metrics.syncErrors.Inc()
			s.log.Error("self-signed certificate: sync failed; serving the certificate in use", "error", err)
		}
	}
}

// Sync brings the Secret, the certificate served and the webhook
// configurations' caBundle up to date once: it takes at most one step of
// a rotation (see decide). Rotate calls it; tests call it after moving the
// clock.
func (s *Source) Sync(ctx context.Context) error {
	for range maxAttempts {
		again, err := s.syncOnce(ctx)
		if err != nil || !again {
			return err
		}
	}
	return fmt.Errorf("self-signed certificate: Secret %s/%s or webhook configuration %s changed %d times while being updated; trying again later",
		s.opts.Namespace, s.opts.SecretName, s.opts.WebhookConfig, maxAttempts)
}

// syncOnce is one attempt of Sync; again reports that another writer got
// in between and the attempt must start over from fresh reads.
func (s *Source) syncOnce(ctx context.Context) (again bool, err error) {
	// The configurations are read before the Secret: a bundle written
	// after a Secret change is then never undone from an older Secret.
	configs, err := readConfigs(ctx, s.client, s.opts.WebhookConfig)
	if err != nil {
		return false, s.rbacHint(err)
	}
	sec, err := s.readSecret(ctx)
	if err != nil {
		return false, err
	}

	now := s.opts.Now()
	var m *material
	var d decision
	if sec == nil {
		d = decision{fresh, "the Secret does not exist"}
	} else if m, err = parseMaterial(sec.Data); err != nil {
		d = decision{fresh, "the Secret holds no usable certificate: " + err.Error()}
	} else {
		d = decide(m, now, s.names, carries(configs, m.signer()), timing{s.opts.SwitchDelay, s.opts.Overlap})
	}
	if d.action != keep {
		next, err := apply(d, m, now, &s.opts, s.names)
		if err != nil {
			return false, fmt.Errorf("self-signed certificate: %w", err)
		}
		if err := s.write(ctx, sec, next); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				s.log.Debug("self-signed certificate: another replica wrote the Secret first; reading its certificate", "secret", s.opts.SecretName)
				return true, nil
			}
			return false, err
		}
		s.log.Info("self-signed certificate: Secret updated", "step", d.action.String(), "reason", d.reason,
			"secret", s.opts.Namespace+"/"+s.opts.SecretName, "cas", len(next.bundle),
			"caNotAfter", next.signer().NotAfter, "certNotAfter", next.leaf().NotAfter)
		m = next
	}
	s.use(m)
	for _, c := range configs {
		patched, err := publish(ctx, s.client, c, m.bundlePEM)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, s.rbacHint(err)
		}
		if patched {
			s.log.Info("self-signed certificate: caBundle updated", "kind", c.kind, "name", c.name, "cas", len(m.bundle))
		}
	}
	return false, nil
}

// readSecret reads the Secret: nil when it does not exist, an error when
// it cannot be read or is not a kubernetes.io/tls Secret.
func (s *Source) readSecret(ctx context.Context) (*corev1.Secret, error) {
	sec, err := s.client.CoreV1().Secrets(s.opts.Namespace).Get(ctx, s.opts.SecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, s.rbacHint(fmt.Errorf("reading Secret %s/%s: %w", s.opts.Namespace, s.opts.SecretName, err))
	case sec.Type != corev1.SecretTypeTLS:
		return nil, fmt.Errorf("self-signed certificate: Secret %s/%s has type %s, want %s: delete it and the server creates it, or choose another Secret name",
			s.opts.Namespace, s.opts.SecretName, sec.Type, corev1.SecretTypeTLS)
	}
	return sec, nil
}

// write stores m in the Secret: a create when sec is nil, otherwise an
// update conditional on sec's resourceVersion. Keys of the Secret that
// are not the Source's are kept.
func (s *Source) write(ctx context.Context, sec *corev1.Secret, m *material) error {
	secrets := s.client.CoreV1().Secrets(s.opts.Namespace)
	var err error
	if sec == nil {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      s.opts.SecretName,
				Namespace: s.opts.Namespace,
				Labels:    map[string]string{"app.kubernetes.io/managed-by": "image-swapper"},
			},
			Type: corev1.SecretTypeTLS,
			Data: m.data(),
		}
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{FieldManager: fieldManager})
	} else {
		sec = sec.DeepCopy()
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		for k, v := range m.data() {
			sec.Data[k] = v
		}
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: fieldManager})
	}
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
		return s.rbacHint(fmt.Errorf("writing Secret %s/%s: %w", s.opts.Namespace, s.opts.SecretName, err))
	}
	return err
}

// use serves m's certificate from now on.
func (s *Source) use(m *material) {
	old := s.current.Swap(m)
	s.metrics.notAfter.WithLabelValues("ca").Set(float64(m.signer().NotAfter.Unix()))
	s.metrics.notAfter.WithLabelValues("serving").Set(float64(m.leaf().NotAfter.Unix()))
	if old == nil || !bytes.Equal(old.certPEM, m.certPEM) {
		s.log.Info("self-signed certificate: serving", "subject", m.leaf().Subject.String(),
			"issuer", m.leaf().Issuer.String(), "notAfter", m.leaf().NotAfter)
	}
}

// rbacHint adds the permissions the Source needs to a forbidden error.
func (s *Source) rbacHint(err error) error {
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("self-signed certificate: %w", err)
	}
	return fmt.Errorf("self-signed certificate: %w (the server needs get, create and update on Secret %s/%s, and get, list, watch and patch on the MutatingWebhookConfiguration and ValidatingWebhookConfiguration %s; see docs/operations.md)",
		err, s.opts.Namespace, s.opts.SecretName, s.opts.WebhookConfig)
}

// metrics are the Source's Prometheus metrics.
type metrics struct {
	notAfter   *prometheus.GaugeVec
	syncErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "image_swapper_selfsigned_not_after_timestamp_seconds",
			Help: "Expiry of the self-signed CA and serving certificate in use, as a Unix time.",
		}, []string{"certificate"}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_selfsigned_sync_errors_total",
			Help: "Failed syncs of the self-signed certificate's Secret and caBundle.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.notAfter, m.syncErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("self-signed certificate: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}
