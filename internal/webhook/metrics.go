package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus metrics. They live in their own
// registry, so that two servers in one process (tests) do not collide.
type Metrics struct {
	registry *prometheus.Registry

	duration          *prometheus.HistogramVec
	decisions         *prometheus.CounterVec
	swaps             prometheus.Counter
	fallbacks         prometheus.Counter
	denials           *prometheus.CounterVec
	configReloads     *prometheus.CounterVec
	configReloadOK    prometheus.Gauge
	certReloads       *prometheus.CounterVec
	certNotAfter      prometheus.Gauge
	namespaceMisses   prometheus.Counter
	admissionsSkipped *prometheus.CounterVec
	dryRun            *prometheus.CounterVec
	copies            *prometheus.CounterVec
	copyBytes         prometheus.Counter
	copyDuration      prometheus.Histogram
	scanVerdicts      *prometheus.CounterVec
	scanPending       *prometheus.CounterVec
}

// Admission results, the "result" label of the duration histogram.
const (
	resultPatched  = "patched"  // allowed with a patch
	resultAllowed  = "allowed"  // allowed without a patch
	resultDenied   = "denied"   // allowed=false
	resultRejected = "rejected" // a 4xx: the request itself was wrong
)

// NewMetrics creates the metrics in a new registry, with the Go runtime
// and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "image_swapper_admission_duration_seconds",
			Help: "Time to answer an admission request, by endpoint and result (patched, allowed, denied, rejected).",
			// Fine at the low end: the goal is a p99 of 2ms.
			Buckets: []float64{.00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_decisions_total",
			Help: "Image decisions at admission, by endpoint and action (swap, keep, deny).",
		}, []string{"endpoint", "action"}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_swaps_total",
			Help: "Images swapped to the mirror by /mutate (dry runs and dryRun: true excluded).",
		}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_fallbacks_total",
			Help: "Images kept as written because the mirror did not have them or could not be reached.",
		}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_denials_total",
			Help: "Policy violations found by /validate, by mode (enforce denies, warn and audit admit); with dryRun: true, enforce violations are counted by image_swapper_dry_run_decisions_total instead.",
		}, []string{"mode"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_config_reloads_total",
			Help: "Configuration reloads after the file changed, by result (success, failure).",
		}, []string{"result"}),
		configReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "image_swapper_config_last_reload_successful",
			Help: "1 when the last configuration load succeeded, 0 when the last good configuration is still in use after a failed one.",
		}),
		certReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_tls_cert_reloads_total",
			Help: "Serving certificate reloads after its files changed, by result (success, failure).",
		}, []string{"result"}),
		certNotAfter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "image_swapper_tls_cert_not_after_timestamp_seconds",
			Help: "Expiry of the serving certificate in use, as a Unix time.",
		}),
		namespaceMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_namespace_cache_misses_total",
			Help: "Admissions for a namespace the informer cache did not know yet (its labels were read from the API instead).",
		}),
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_copies_total",
			Help: "Finished copies into the mirror, by result (copied, present, failed).",
		}, []string{"result"}),
		copyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_copy_bytes_total",
			Help: "Blob bytes uploaded to the mirror (blobs it had or mounted count 0).",
		}),
		copyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "image_swapper_copy_duration_seconds",
			Help:    "Time a successful copy took (its last attempt).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50ms to ~100s
		}),
		dryRun: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_dry_run_decisions_total",
			Help: "With dryRun: true in the configuration, what did not happen: images /mutate would have swapped (would=swap) and enforce violations /validate would have denied (would=deny).",
		}, []string{"endpoint", "would"}),
		scanVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_scan_verdicts_total",
			Help: "Vulnerability verdicts on images at /validate, by result (pass, fail, pending, error).",
		}, []string{"result"}),
		scanPending: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_scan_pending_admissions_total",
			Help: "Images admitted or denied at /validate without a vulnerability verdict yet, by security.scanning.pending (deny, warn, allow).",
		}, []string{"policy"}),
		admissionsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_admissions_skipped_total",
			Help: "Admission requests answered without a decision, by reason (kind, operation, subresource).",
		}, []string{"reason"}),
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.duration, m.decisions, m.swaps, m.fallbacks, m.denials,
		m.configReloads, m.configReloadOK, m.certReloads, m.certNotAfter,
		m.copies, m.copyBytes, m.copyDuration,
		m.namespaceMisses, m.admissionsSkipped, m.dryRun,
		m.scanVerdicts, m.scanPending,
	)
	return m
}

// Registry is where the metrics are registered; /metrics serves it.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// CopyFinished records a finished copy of the mirror service: copied says
// whether anything was written, err is its final error.
func (m *Metrics) CopyFinished(copied bool, bytes int64, took time.Duration, err error) {
	result := "present"
	switch {
	case err != nil:
		result = "failed"
	case copied:
		result = "copied"
	}
	m.copies.WithLabelValues(result).Inc()
	if err == nil {
		m.copyBytes.Add(float64(bytes))
		m.copyDuration.Observe(took.Seconds())
	}
}
