package vulngate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-swapper/image-swapper/internal/scan"
)

// metrics are the scanner's; admission's verdicts are counted by the
// webhook.
type metrics struct {
	scans      *prometheus.CounterVec
	duration   prometheus.Histogram
	rescans    prometheus.Counter
	lastRescan prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, q *scan.Queue) *metrics {
	m := &metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "image_swapper_scans_total",
			Help: "Vulnerability scans of platform manifests, by result (success, error), retries included in one.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "image_swapper_scan_duration_seconds",
			Help:    "How long a vulnerability scan took, retries included.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640},
		}),
		rescans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "image_swapper_rescans_total",
			Help: "Scans the rescan loop queued because the newest scan of an image in use was older than security.scanning.rescanAfter.",
		}),
		lastRescan: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "image_swapper_rescan_last_pass_timestamp_seconds",
			Help: "When the last complete rescan pass ended, as a Unix time; only on the replica that holds the leader Lease.",
		}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "image_swapper_scan_queue_depth",
		Help: "Vulnerability scans queued or running.",
	}, func() float64 { return float64(q.Depth()) })
	if reg != nil {
		reg.MustRegister(m.scans, m.duration, depth, m.rescans, m.lastRescan)
	}
	for _, r := range []string{"success", "error"} {
		m.scans.WithLabelValues(r)
	}
	return m
}

func (m *metrics) finished(res scan.ScanResult) {
	result := "success"
	if res.Err != nil {
		result = "error"
	}
	m.scans.WithLabelValues(result).Inc()
	m.duration.Observe(res.Finished.Sub(res.Started).Seconds())
}
