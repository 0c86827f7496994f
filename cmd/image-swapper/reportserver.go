package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/report"
	"github.com/image-swapper/image-swapper/internal/store"
)

// reportServerFlags are serve's flags for the compliance report page.
type reportServerFlags struct {
	listen string
}

func (f *reportServerFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.listen, "report-listen", "", "also serve the compliance report (HTML; ?format=json) over plain HTTP on this address, "+
		"such as 127.0.0.1:8090; off by default, never on the --listen port. It has no authentication: bind it to localhost or put it behind an authenticating proxy")
}

const (
	// reportDefaultSince is the window of the served report without
	// ?since=.
	reportDefaultSince = 30 * 24 * time.Hour
	// reportBuildTimeout bounds one report's reading of the ledger.
	reportBuildTimeout = 2 * time.Minute
	reportShutdown     = 10 * time.Second
)

// reportServer serves the report page on its own listener until its
// context ends or stop is called.
type reportServer struct {
	addr    net.Addr
	cancel  context.CancelFunc
	stopped chan struct{}
}

// start starts the report server of --report-listen, reading st and
// judging scans by the configuration current returns (serve's, as
// reloaded). It returns a nil server, whose stop does nothing,
// when the flag is unset. webhookListen is serve's --listen: the report
// is refused on its port.
func (f *reportServerFlags) start(ctx context.Context, webhookListen string, current func() *config.Config, st store.Store, log *slog.Logger) (*reportServer, error) {
	if f.listen == "" {
		return nil, nil
	}
	if err := checkReportListen(f.listen, webhookListen); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return nil, fmt.Errorf("--report-listen %s: %w", f.listen, err)
	}
	h := newReportHandler(st, current, log)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ctx, cancel := context.WithCancel(ctx)
	rs := &reportServer{addr: ln.Addr(), cancel: cancel, stopped: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("report server failed", "listen", ln.Addr().String(), "error", err)
		}
	}()
	go func() {
		defer close(rs.stopped)
		select {
		case <-ctx.Done():
		case <-served:
		}
		sctx, scancel := context.WithTimeout(context.Background(), reportShutdown)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-served
		log.Info("report server stopped", "listen", ln.Addr().String())
	}()
	log.Info("serving the compliance report over plain HTTP", "listen", ln.Addr().String())
	return rs, nil
}

// stop shuts the server down, letting requests in flight finish, and
// returns once it has.
func (rs *reportServer) stop() {
	if rs == nil {
		return
	}
	rs.cancel()
	<-rs.stopped
}

// checkReportListen refuses a report address that is not host:port, or
// whose port is the webhook's: the report is plain HTTP and
// unauthenticated, and must never share the webhook's port.
func checkReportListen(addr, webhookListen string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--report-listen %q: want host:port, such as 127.0.0.1:8090: %w", addr, err)
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return fmt.Errorf("--report-listen %q: %w", addr, err)
	}
	if _, wport, err := net.SplitHostPort(webhookListen); err == nil && p != 0 {
		if wp, err := net.LookupPort("tcp", wport); err == nil && wp == p {
			return fmt.Errorf("--report-listen %s: port %d is the webhook's (--listen %s); the report is plain HTTP without authentication and needs a port of its own, such as 127.0.0.1:8090",
				addr, p, webhookListen)
		}
	}
	return nil
}

// reportHandler serves GET / as the HTML report, or as another format
// with ?format=json (csv, table, policyreport); ?since=7d (default 30d,
// "all" for the whole ledger) and ?namespace=GLOB narrow it. Each
// request builds the report from the store: it is live.
type reportHandler struct {
	st store.Store
	// config is the configuration in force, whose policy judges scans.
	config func() *config.Config
	log    *slog.Logger
	// busy lets one report be built at a time: each reads the ledger
	// through.
	busy chan struct{}
}

func newReportHandler(st store.Store, current func() *config.Config, log *slog.Logger) *reportHandler {
	return &reportHandler{st: st, config: current, log: log, busy: make(chan struct{}, 1)}
}

var reportContentTypes = map[string]string{
	"html":         "text/html; charset=utf-8",
	"json":         "application/json",
	"csv":          "text/csv; charset=utf-8",
	"table":        "text/plain; charset=utf-8",
	"policyreport": "application/yaml",
}

func (h *reportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the report is read with GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	format := cmp.Or(q.Get("format"), "html")
	if !slices.Contains(report.Formats, format) {
		http.Error(w, fmt.Sprintf("format %q: want one of %s", format, strings.Join(report.Formats, ", ")), http.StatusBadRequest)
		return
	}
	window := reportDefaultSince
	if s := q.Get("since"); s == "all" {
		window = 0
	} else if s != "" {
		d, err := parseSince(s)
		if err != nil {
			http.Error(w, strings.Replace(err.Error(), "--since", "since", 1)+", or all", http.StatusBadRequest)
			return
		}
		window = d
	}
	namespace := q.Get("namespace")
	if namespace != "" {
		if _, err := glob.Compile(namespace); err != nil {
			http.Error(w, "namespace: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	select {
	case h.busy <- struct{}{}:
		defer func() { <-h.busy }()
	case <-r.Context().Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reportBuildTimeout)
	defer cancel()
	now := time.Now()
	opts := report.Options{Namespace: namespace, Scanning: h.config().Security.Scanning, Now: now}
	if window > 0 {
		opts.Since = now.Add(-window)
	}
	rep, err := report.Build(ctx, h.st, opts)
	if err != nil {
		h.log.Error("building the report", "error", err)
		http.Error(w, "building the report failed; the server's log says why", http.StatusInternalServerError)
		return
	}
	// Rendered whole first, so that a failure is a 500, not half a page.
	var buf bytes.Buffer
	if err := report.Write(&buf, rep, format); err != nil {
		h.log.Error("writing the report", "format", format, "error", err)
		http.Error(w, "writing the report failed; the server's log says why", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", reportContentTypes[format])
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	csp := "default-src 'none'"
	if format == "html" {
		csp = report.PageCSP
	}
	hd.Set("Content-Security-Policy", csp+"; frame-ancestors 'none'")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}
