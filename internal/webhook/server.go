// Package webhook is image-swapper's admission server: /mutate swaps Pod
// images to their mirror, /validate gates them with the allow and deny
// lists, and /healthz, /readyz and /metrics serve operations. Both
// admission endpoints ask the engine, so an admission decision is the
// decision `image-swapper explain` prints.
//
// The server reloads its configuration and its serving certificate when
// their files change, reads namespace labels from an informer cache, and
// drains in-flight requests when it stops.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/engine"
)

// Defaults for the zero values of Options.
const (
	DefaultBudget          = 8 * time.Second
	DefaultReloadInterval  = time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

// ScanGate is the vulnerability scanner the server asks (vulngate.Gate is
// one).
type ScanGate interface {
	engine.Scans
	// Reload applies a reloaded security.scanning; an error (a key that
	// applies only at start, changed) rejects the configuration.
	Reload(config.Scanning) error
}

// Options configure a Server. ConfigPath is required.
type Options struct {
	// ConfigPath is the configuration file, reloaded when its content
	// changes.
	ConfigPath string
	// Namespace is the namespace the server runs in; like kube-system, it
	// is left alone unless the configuration includes it.
	Namespace string
	// Certificates supplies the serving certificate. Without it Serve
	// speaks plain HTTP, which only tests and a TLS-terminating proxy
	// want.
	Certificates CertificateSource
	// Namespaces supplies namespace labels; without it selectors see only
	// a namespace's name.
	Namespaces NamespaceSource
	// Policies, when set, merges ClusterImagePolicies and ImagePolicies
	// with the configuration (policyapi.Watcher); the server is not
	// ready until it has synced.
	Policies PolicySource
	// Mirror is the mirror service that swap policies exists, wait and
	// always consult; without it every swap the rules plan is made, as if
	// the target had every image.
	Mirror engine.Mirror
	// MirrorConfig is the configuration Mirror was built from (the
	// configuration file's, when nil). A mirror reads registry access and
	// copy options once, so a reload that changes them (targetProvider,
	// registries, mirroring.platforms, copySignatures, overwrite,
	// concurrency, presenceCache, and targetRegistry when a targetProvider
	// is set) is refused like an invalid one: logged, counted as a failed
	// reload, and the last good configuration stays.
	MirrorConfig *config.Config
	// PullSecrets, when set, gives the mirror each Pod's imagePullSecrets
	// and its ServiceAccount's, to pull the sources it copies; they are
	// read only for Pods whose images are copied.
	PullSecrets *PullSecrets
	// Ledger, when set, records every image decision (the record store's
	// writer); it never delays or fails an admission.
	Ledger Ledger
	// Events, when set, records Warning Events on the Pod's owner (or the
	// Pod) for denials, warnings, fallbacks and pending scans; it never
	// delays an admission, and dry-run requests record none.
	Events Events
	// Scans, when set, is the vulnerability scanner that /validate asks
	// for the findings of each image while security.scanning is enabled;
	// it is told of each configuration reload.
	Scans ScanGate
	// Logger receives one line per admission and the server's events.
	Logger *slog.Logger
	// Metrics are served on /metrics; NewMetrics if nil.
	Metrics *Metrics
	// Budget bounds the time an admission may take, mirror waits
	// included; keep it below the webhook's timeoutSeconds.
	Budget time.Duration
	// ReloadInterval is how often the configuration file is checked.
	ReloadInterval time.Duration
	// ShutdownDelay is how long Serve keeps serving, unready, after its
	// context ends, so that the Service stops sending requests before the
	// listener closes.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to
	// finish once the listener is closed.
	ShutdownTimeout time.Duration
}

// Server is the admission server.
type Server struct {
	opts       Options
	log        *slog.Logger
	metrics    *Metrics
	config     *configWatcher
	certs      CertificateSource
	namespaces NamespaceSource
	mirror     engine.Mirror
	pulls      *PullSecrets
	stopping   atomic.Bool
	handler    http.Handler
}

// New loads the configuration and prepares the server. An invalid
// configuration is an error naming the file, line and key path.
func New(opts Options) (*Server, error) {
	if opts.ConfigPath == "" {
		return nil, errors.New("webhook: a configuration file is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	cw, err := newConfigWatcher(opts.ConfigPath, opts.ReloadInterval, opts.Logger, opts.Metrics, opts.Mirror != nil, opts.MirrorConfig, engine.WithOwnNamespace(opts.Namespace))
	if err != nil {
		return nil, err
	}
	if opts.Scans != nil {
		cw.onReload = func(c *config.Config) error { return opts.Scans.Reload(c.Security.Scanning) }
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		config:     cw,
		certs:      opts.Certificates,
		namespaces: opts.Namespaces,
		mirror:     opts.Mirror,
		pulls:      opts.PullSecrets,
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", s.admissionHandler("mutate", s.mutate))
	mux.Handle("/validate", s.admissionHandler("validate", s.validate))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(opts.Metrics.Registry(), promhttp.HandlerOpts{}))
	s.handler = mux
	return s, nil
}

// Handler serves every endpoint; Serve uses it.
func (s *Server) Handler() http.Handler { return s.handler }

// Engine returns the engine of the configuration in use.
func (s *Server) Engine() *engine.Engine { return s.config.Engine() }

// Ready returns nil when the server can answer admissions correctly: its
// configuration and certificate are loaded and the namespace cache is
// synced; otherwise it says what is missing.
func (s *Server) Ready() error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if s.certs != nil {
		if c, err := s.certs.GetCertificate(&tls.ClientHelloInfo{}); c == nil || err != nil {
			return fmt.Errorf("no serving certificate (%v)", err)
		}
	}
	if s.namespaces != nil && !s.namespaces.HasSynced() {
		return errors.New("the namespace cache is not synced yet")
	}
	if s.opts.Policies != nil && !s.opts.Policies.HasSynced() {
		return errors.New("the image policy cache is not synced yet")
	}
	return nil
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := s.Ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// reviewFunc answers one admission request.
type reviewFunc func(context.Context, *podRequest, *outcome) (*admissionv1.AdmissionResponse, *requestError)

// admissionHandler reads an AdmissionReview, answers it with review, and
// logs and measures the result.
func (s *Server) admissionHandler(endpoint string, review reviewFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		in, rerr := readReview(w, r)
		if rerr != nil {
			s.reject(w, r, endpoint, start, rerr)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.Budget)
		defer cancel()
		var out outcome
		resp, rerr := review(ctx, in.Request, &out)
		if rerr != nil {
			s.reject(w, r, endpoint, start, rerr)
			return
		}
		resp.UID = in.Request.UID
		var body bytes.Buffer
		enc := json.NewEncoder(&body)
		// Warnings hold "->"; kubectl shows them as written either way, but
		// people read the JSON too.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Response: resp}); err != nil {
			// A response holds strings and bytes only; this is a bug.
			s.reject(w, r, endpoint, start, &requestError{status: http.StatusInternalServerError, reason: "encoding the response: " + err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body.Bytes())

		result := resultAllowed
		switch {
		case !resp.Allowed:
			result = resultDenied
		case resp.Patch != nil:
			result = resultPatched
		}
		elapsed := time.Since(start)
		s.metrics.duration.WithLabelValues(endpoint, result).Observe(elapsed.Seconds())
		s.logOutcome(r.Context(), endpoint, string(in.Request.UID), result, &out, slog.Duration("duration", elapsed))
	})
}

// reject answers a request that cannot get an AdmissionReview.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, endpoint string, start time.Time, rerr *requestError) {
	http.Error(w, rerr.reason, rerr.status)
	s.metrics.duration.WithLabelValues(endpoint, resultRejected).Observe(time.Since(start).Seconds())
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "admission request rejected",
		slog.String("endpoint", endpoint),
		slog.Int("status", rerr.status),
		slog.String("reason", rerr.reason),
		slog.String("remote", r.RemoteAddr))
}

// Serve serves on ln (over TLS when Options.Certificates is set) and keeps
// the configuration, certificate and namespace cache current, until ctx
// ends. Then it turns unready, waits ShutdownDelay, stops accepting,
// drains in-flight requests for up to ShutdownTimeout, stops its
// background work and returns. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopBackground()
		wg.Wait()
	}()
	wg.Go(func() { s.config.Run(bg) })
	if s.certs != nil {
		wg.Go(func() { s.certs.Run(bg) })
	}
	if s.namespaces != nil {
		wg.Go(func() { s.namespaces.Run(bg) })
	}
	if s.opts.Policies != nil {
		wg.Go(func() { s.opts.Policies.Run(bg, s.config.Engine) })
	}

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      45 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	if s.certs != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate}
		// ServeTLS, not a tls.Listener, so that HTTP/2 is configured too.
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	s.log.Info("serving admission webhooks", "address", ln.Addr().String(), "tls", s.certs != nil)

	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	s.log.Info("shutting down: draining in-flight requests", "delay", s.opts.ShutdownDelay.String(), "timeout", s.opts.ShutdownTimeout.String())
	if s.opts.ShutdownDelay > 0 {
		time.Sleep(s.opts.ShutdownDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed, once Shutdown closed the listener
	if err != nil {
		return fmt.Errorf("shutting down: in-flight requests did not finish within %s: %w", s.opts.ShutdownTimeout, err)
	}
	s.log.Info("shut down cleanly")
	return nil
}
