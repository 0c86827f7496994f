package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/image-swapper/image-swapper/internal/claim"
	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/events"
	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/policyapi"
	"github.com/image-swapper/image-swapper/internal/registry"
	"github.com/image-swapper/image-swapper/internal/selfsigned"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/vulngate"
	"github.com/image-swapper/image-swapper/internal/webhook"
)

// serveFlags are the flags of image-swapper serve.
type serveFlags struct {
	configPath      string
	listen          string
	tlsCert         string
	tlsKey          string
	kube            kubeFlags
	noKubeAPI       bool
	imagePolicies   bool
	namespace       string
	logFormat       string
	logLevel        string
	budget          time.Duration
	shutdownDelay   time.Duration
	shutdownTimeout time.Duration
	selfSigned      selfSignedFlags
	report          reportServerFlags
	policyReports   policyReportFlags
}

// selfSignedFlags are the flags of --self-signed.
type selfSignedFlags struct {
	enabled       bool
	secret        string
	service       string
	webhookConfig string
	dns           []string
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --config FILE --tls-cert FILE --tls-key FILE",
		Short: "Serve the admission webhooks (/mutate, /validate)",
		Long: `serve runs the admission webhook server over HTTPS: /mutate swaps Pod images
to their mirror, /validate applies the allow and deny lists, and /healthz,
/readyz and /metrics (Prometheus) serve operations.

The configuration file and the certificate files are reloaded when they
change; an invalid new configuration is logged and the last good one stays.
Namespace labels come from an informer over the Kubernetes API, found as
kubectl finds it: --kubeconfig, else $KUBECONFIG (files merged), else
in-cluster, else ~/.kube/config; --context picks a context. SIGTERM or
SIGINT stops the server after in-flight requests finish.

With --self-signed instead of --tls-cert and --tls-key, the server makes its
own CA and serving certificate, keeps them in a Secret its replicas share,
keeps the caBundle of its webhook configurations current and rotates both
before they expire (RBAC: docs/operations.md).`,
		Example: `  image-swapper serve --config /etc/image-swapper/config.yaml \
    --tls-cert /etc/image-swapper/tls/tls.crt --tls-key /etc/image-swapper/tls/tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return f.run(ctx, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.configPath, "config", "c", "", "configuration file (required; reloaded when it changes)")
	fl.StringVar(&f.listen, "listen", ":8443", "address to serve HTTPS on")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serving certificate, PEM (required; reloaded when it changes)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key of the serving certificate, PEM (required)")
	f.kube.register(fl)
	fl.BoolVar(&f.noKubeAPI, "no-kube-api", false, "run without the Kubernetes API: namespace selectors see only namespace names (for local testing)")
	fl.BoolVar(&f.imagePolicies, "image-policies", true, "merge the cluster's ClusterImagePolicies and ImagePolicies with the configuration, once their CRDs are installed; the leader Lease holder writes their status (docs/policies.md)")
	fl.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the server runs in, left alone unless the configuration includes it (default $POD_NAMESPACE)")
	fl.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.DurationVar(&f.budget, "admission-budget", webhook.DefaultBudget, "longest an admission may take, mirror waits included; keep it below the webhook's timeoutSeconds")
	fl.DurationVar(&f.shutdownDelay, "shutdown-delay", 5*time.Second, "how long to keep serving, unready, after SIGTERM, so that endpoints drop the server first")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", webhook.DefaultShutdownTimeout, "how long in-flight requests may take to finish at shutdown")
	// --- self-signed certificate (internal/selfsigned) ---
	fl.BoolVar(&f.selfSigned.enabled, "self-signed", false, "make and rotate a CA and serving certificate, kept in a Secret, and keep the webhook configurations' caBundle current (instead of --tls-cert and --tls-key)")
	fl.StringVar(&f.selfSigned.secret, "self-signed-secret", selfsigned.DefaultSecretName, "with --self-signed: the kubernetes.io/tls Secret in --namespace that holds the CA and certificate")
	fl.StringVar(&f.selfSigned.service, "service", selfsigned.DefaultService, "with --self-signed: the webhook's Service in --namespace; the certificate is for SERVICE.NAMESPACE.svc")
	fl.StringVar(&f.selfSigned.webhookConfig, "webhook-config", selfsigned.DefaultWebhookConfig, "with --self-signed: the Mutating- and ValidatingWebhookConfiguration whose caBundle is kept current")
	fl.StringSliceVar(&f.selfSigned.dns, "self-signed-dns", nil, "with --self-signed: another DNS name or IP address for the certificate (repeatable)")
	// --- end self-signed ---
	f.report.register(fl)
	f.policyReports.register(fl)
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func (f *serveFlags) run(ctx context.Context, stderr io.Writer) error {
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return trouble(err)
	}
	if err := f.checkCertificateFlags(); err != nil {
		return trouble(err)
	}
	if f.budget <= 0 {
		return trouble(fmt.Errorf("--admission-budget %s: want a positive duration", f.budget))
	}
	metrics := webhook.NewMetrics()
	var certs webhook.CertificateSource
	// selfSigned is the certificate's source under --self-signed;
	// policyWatcher the image policies' watcher with --image-policies.
	var selfSigned *selfsigned.Source
	var policyWatcher *policyapi.Watcher
	if !f.selfSigned.enabled {
		if certs, err = webhook.NewFileCertificate(f.tlsCert, f.tlsKey, webhook.FileCertificateOptions{Logger: log, Metrics: metrics}); err != nil {
			return trouble(err)
		}
	}
	var (
		namespaces  webhook.NamespaceSource
		policies    webhook.PolicySource
		pullSecrets *webhook.PullSecrets
		podEvents   webhook.Events
		regOpts     []registry.Option
	)
	// kubeClient is nil with --no-kube-api.
	var kubeClient kubernetes.Interface
	if !f.noKubeAPI {
		client, from, err := f.kube.access().client()
		if err != nil {
			return trouble(err)
		}
		kubeClient = client
		log.Info("using the Kubernetes API", "from", from)
		// client-go logs through klog; send it to the same place.
		klog.SetSlogLogger(log)
		namespaces = webhook.NewNamespaceInformer(client, log, metrics)
		// Denials, warnings and fallbacks become Events on the Pod's owner;
		// recorded asynchronously, after the admission has been answered.
		rec := events.New(client, events.Options{Logger: log, Registerer: metrics.Registry()})
		defer rec.Close()
		podEvents = rec
		if f.imagePolicies {
			w, err := newPolicyWatcher(f.kube.access(), client, log)
			if err != nil {
				return trouble(err)
			}
			policies = w
			policyWatcher = w
		}
		// Copies pull their sources with the Pod's imagePullSecrets.
		pullSecrets = webhook.NewPullSecrets(client, log, 0)
		// registries[host].credentials.secret names a Secret to read.
		regOpts = append(regOpts, registry.WithSecretLoader(secretLoader(client)))
		if f.selfSigned.enabled {
			if selfSigned, err = f.selfSignedSource(ctx, client, log, metrics); err != nil {
				return trouble(err)
			}
			certs = selfSigned
		}
	} else {
		log.Warn("running without the Kubernetes API: namespace selectors see only namespace names")
	}
	// The mirror service reaches registries as the configuration at start
	// says; the server refuses a reload that would change registry access
	// (MirrorConfig), rather than half-apply it.
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return trouble(err)
	}
	// serve always records: every decision and copy goes to the ledger
	// (SQLite at its default path without a store section). The writer
	// queues, so a slow store never delays an admission; it is closed
	// after the server has drained, which flushes what is queued.
	ledger, err := openLedger(ctx, cfg, log, store.WriterOptions{
		Logger: log, Registerer: metrics.Registry(), Retention: cfg.Store.RetentionDuration(),
	})
	if err != nil {
		return trouble(fmt.Errorf("%s: store: %w", f.configPath, err))
	}
	defer ledger.close()
	recordCopy := ledger.onCopy()
	// Replicas on one PostgreSQL share copies and scans: each is made by
	// one replica, whose claim in the store the others wait on
	// (docs/operations.md). SQLite is one replica's.
	var claims *claim.Claimer
	if cfg.Store.EffectiveDriver() == string(store.Postgres) {
		claims = claim.New(ledger.st, claim.Options{Logger: log, Registerer: metrics.Registry()})
		log.Info("sharing copies and scans with the other replicas on the store", "holder", claims.Holder())
	}
	m, err := newSharedMirroring(cfg, log, claims, func(ev mirror.Event) {
		metrics.CopyFinished(ev.Result.Copied, ev.Result.Bytes, ev.Result.Duration, ev.Err)
		recordCopy(ev)
	}, regOpts...)
	if err != nil {
		return trouble(fmt.Errorf("%s: %w", f.configPath, err))
	}
	defer m.Close()
	// The vulnerability scanner runs whether or not security.scanning is
	// enabled now, so that a reload can enable it; /validate asks it only
	// while it is. Its scans are recorded, and its known findings read
	// back after a restart, through the ledger.
	scans, err := vulngate.New(vulngate.Options{
		Scanning: cfg.Security.Scanning, Registry: m.client, Store: ledger.st, Ledger: ledger.w,
		Logger: log, Registerer: metrics.Registry(), Claims: claims,
	})
	if err != nil {
		return trouble(fmt.Errorf("%s: %w", f.configPath, err))
	}
	defer scans.Close()
	srv, err := webhook.New(webhook.Options{
		Mirror:          m.engineMirror(),
		MirrorConfig:    cfg,
		ConfigPath:      f.configPath,
		Namespace:       f.namespace,
		Certificates:    certs,
		Namespaces:      namespaces,
		Policies:        policies,
		PullSecrets:     pullSecrets,
		Ledger:          ledger.w,
		Events:          podEvents,
		Scans:           scans,
		Logger:          log,
		Metrics:         metrics,
		Budget:          f.budget,
		ShutdownDelay:   f.shutdownDelay,
		ShutdownTimeout: f.shutdownTimeout,
	})
	if err != nil {
		return trouble(err)
	}
	// What runs beside the webhook uses the configuration it has in
	// force: the last good file, reloads refused for start-only keys
	// included.
	current := func() *config.Config { return srv.Engine().Config() }
	// The compliance report page (reportserver.go), off without --report-listen.
	reports, err := f.report.start(ctx, f.listen, current, ledger.st, log)
	if err != nil {
		return trouble(err)
	}
	defer reports.stop()
	// PolicyReports in the cluster (policyreports.go), on the leader only.
	if f.policyReports.enabled && f.noKubeAPI {
		return trouble(errors.New("--policy-reports writes to the Kubernetes API: drop --no-kube-api"))
	}
	policyReports, err := f.policyReports.loop(f.kube.access(), f.namespace, current, ledger.st, log)
	if err != nil {
		return trouble(err)
	}
	// The background loops: the sync of mirrored tags (mirroring.sync),
	// the rescans of images in use, PolicyReports, the rotation of the
	// self-signed certificate and the status of image policies; on one
	// replica (background.go).
	rescans := func(ctx context.Context) {
		scans.RescanLoop(ctx, func() vulngate.RescanSettings {
			c := current()
			// In use: what Pods ran within the window the sync keeps fresh.
			return vulngate.RescanSettings{Enabled: c.Security.Scanning.Enabled, UsedWithin: c.Mirroring.Sync.SyncWindow()}
		})
	}
	loops := []func(context.Context){newSyncLoop(srv.Engine, ledger, m.client, scans, log, metrics.Registry()), rescans}
	if policyReports != nil {
		loops = append(loops, policyReports)
	}
	if selfSigned != nil {
		loops = append(loops, selfSigned.Rotate)
	}
	if policyWatcher != nil {
		// The webhook server runs the watcher; its statuses are written
		// by one replica.
		loops = append(loops, func(ctx context.Context) { policyWatcher.WriteStatuses(ctx, srv.Engine) })
	}
	bg := startBackground(ctx, kubeClient, f.namespace, f.policyReports.lease, log, loops...)
	defer bg.stop()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return trouble(fmt.Errorf("--listen %s: %w", f.listen, err))
	}
	if err := srv.Serve(ctx, ln); err != nil {
		return trouble(err)
	}
	return nil
}

// --- self-signed certificate (internal/selfsigned) ---

// checkCertificateFlags accepts either --tls-cert with --tls-key, or
// --self-signed with what it needs.
func (f *serveFlags) checkCertificateFlags() error {
	if !f.selfSigned.enabled {
		if f.tlsCert == "" || f.tlsKey == "" {
			return errors.New("--tls-cert and --tls-key are required (or --self-signed): the API server calls webhooks over HTTPS")
		}
		return nil
	}
	switch {
	case f.tlsCert != "" || f.tlsKey != "":
		return errors.New("--self-signed makes its own certificate: drop --tls-cert and --tls-key, or drop --self-signed to serve those files")
	case f.noKubeAPI:
		return errors.New("--self-signed keeps its certificate in a Secret and needs the Kubernetes API: drop --no-kube-api")
	case f.namespace == "":
		return errors.New("--self-signed needs --namespace (default $POD_NAMESPACE): the Secret and the Service are in it")
	}
	return nil
}

// selfSignedSource reads or creates the Secret before the server starts,
// so that it has a certificate to serve; the leader Lease's holder rotates
// it (Source.Rotate).
func (f *serveFlags) selfSignedSource(ctx context.Context, client kubernetes.Interface, log *slog.Logger, metrics *webhook.Metrics) (*selfsigned.Source, error) {
	return selfsigned.New(ctx, client, selfsigned.Options{
		Namespace:     f.namespace,
		SecretName:    f.selfSigned.secret,
		Service:       f.selfSigned.service,
		WebhookConfig: f.selfSigned.webhookConfig,
		ExtraNames:    f.selfSigned.dns,
		Logger:        log,
		Registerer:    metrics.Registry(),
	})
}

// --- end self-signed ---

// newLogger builds the slog logger of --log-format and --log-level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// secretLoader reads the .dockerconfigjson of a kubernetes.io/dockerconfigjson
// Secret for registry credentials that name one.
func secretLoader(client kubernetes.Interface) registry.SecretLoader {
	return func(ctx context.Context, namespace, name string) ([]byte, error) {
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
		}
		if s.Type != corev1.SecretTypeDockerConfigJson {
			return nil, fmt.Errorf("secret %s/%s is of type %s, want %s", namespace, name, s.Type, corev1.SecretTypeDockerConfigJson)
		}
		return s.Data[corev1.DockerConfigJsonKey], nil
	}
}
