package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WriterOptions configures a Writer. Zero values take the defaults.
type WriterOptions struct {
	// MaxQueue bounds the records waiting to be written, the batch being
	// written included (default 100,000). Beyond it records are dropped,
	// counted, and written as a Gap.
	MaxQueue int
	// BatchSize is the most records one transaction writes (default 1,000).
	BatchSize int
	// Interval is how long a record waits for its batch to fill (default
	// 200ms).
	Interval time.Duration
	// Retention is how old records get before they are pruned, every
	// PruneEvery (default 1h); 0 keeps them.
	Retention  time.Duration
	PruneEvery time.Duration
	// MaxBackoff bounds the wait between retries of a failed write
	// (default 5s; the first retry waits 100ms).
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// Registerer receives the writer's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Writer writes records to a Store in the background. Record, RecordCopy
// and RecordScan never block on the database and never fail: a down or slow
// store only fills the bounded queue.
type Writer struct {
	store Store
	opts  WriterOptions
	log   *slog.Logger

	mu      sync.Mutex
	queue   Batch
	pending int // records in the batch being written
	gap     Gap
	closed  bool
	kick    chan struct{}

	cancel context.CancelFunc
	// stop asks the loop to flush and return; done is closed when it has.
	stop chan struct{}
	done chan struct{}

	written, dropped, failures prometheus.Counter
	queued                     prometheus.GaugeFunc
}

// NewWriter starts a writer over s. Close stops it.
func NewWriter(s Store, opts WriterOptions) *Writer {
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 100_000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Hour
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{store: s, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.written = prometheus.NewCounter(prometheus.CounterOpts{Name: "image_swapper_ledger_records_written_total", Help: "Records written to the ledger."})
	w.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "image_swapper_ledger_records_dropped_total", Help: "Records dropped because the ledger queue was full; each run of drops is written as a gap record."})
	w.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "image_swapper_ledger_write_failures_total", Help: "Failed ledger write transactions (each is retried)."})
	w.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "image_swapper_ledger_queue_records", Help: "Records waiting to be written to the ledger."}, func() float64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return float64(w.queue.Len() + w.pending)
	})
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{w.written, w.dropped, w.failures, w.queued} {
			if err := opts.Registerer.Register(c); err != nil {
				w.log.Warn("ledger metrics not registered", "error", err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.loop(ctx)
	return w
}

// Record enqueues an admission record. It never blocks on the database.
func (w *Writer) Record(r AdmissionRecord) {
	w.enqueue(func(b *Batch) { b.Admissions = append(b.Admissions, r) }, r.Time)
}

// RecordCopy enqueues a copy record.
func (w *Writer) RecordCopy(r CopyRecord) {
	w.enqueue(func(b *Batch) { b.Copies = append(b.Copies, r) }, r.Time)
}

// RecordScan enqueues a scan record.
func (w *Writer) RecordScan(r ScanRecord) {
	w.enqueue(func(b *Batch) { b.Scans = append(b.Scans, r) }, r.Time)
}

func (w *Writer) enqueue(add func(*Batch), at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	w.mu.Lock()
	if w.closed || w.queue.Len()+w.pending >= w.opts.MaxQueue {
		if w.gap.Count == 0 {
			w.gap.From = at
		}
		w.gap.Count++
		w.gap.To = at
		w.mu.Unlock()
		w.dropped.Inc()
		return
	}
	add(&w.queue)
	full := len(w.queue.Admissions) >= w.opts.BatchSize
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// take moves up to BatchSize records, and the gap, into a new batch.
func (w *Writer) take() *Batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &Batch{}
	n := w.opts.BatchSize
	take := func(k int) int { return min(k, n) }
	k := take(len(w.queue.Admissions))
	b.Admissions, w.queue.Admissions = w.queue.Admissions[:k:k], w.queue.Admissions[k:]
	n -= k
	k = take(len(w.queue.Copies))
	b.Copies, w.queue.Copies = w.queue.Copies[:k:k], w.queue.Copies[k:]
	n -= k
	k = max(take(len(w.queue.Scans)), 0)
	b.Scans, w.queue.Scans = w.queue.Scans[:k:k], w.queue.Scans[k:]
	if w.gap.Count > 0 {
		b.Gaps = []Gap{w.gap}
		w.gap = Gap{}
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := rand.Read(b.Key[:]); err != nil {
		// crypto/rand does not fail on supported platforms; without a
		// key the batch is only not deduplicated.
		b.Key = [16]byte{}
	}
	w.pending = b.Len()
	return b
}

func (w *Writer) loop(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	prune := time.NewTicker(w.opts.PruneEvery)
	defer prune.Stop()
	stopping := false
	for {
		if !stopping {
			select {
			case <-tick.C:
			case <-w.kick:
			case <-prune.C:
				w.prune(ctx)
				continue
			case <-w.stop:
				stopping = true
			}
		}
		for {
			b := w.take()
			if b == nil {
				break
			}
			if !w.write(ctx, b) {
				return
			}
			w.mu.Lock()
			more := len(w.queue.Admissions) >= w.opts.BatchSize
			w.mu.Unlock()
			if !more && !stopping {
				break
			}
		}
		if stopping {
			return
		}
	}
}

// write writes b, retrying with backoff until it is written or ctx ends;
// it reports whether it was written.
func (w *Writer) write(ctx context.Context, b *Batch) bool {
	backoff := 100 * time.Millisecond
	failed := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.store.Write(wctx, b)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.pending = 0
			w.mu.Unlock()
			w.written.Add(float64(b.Len()))
			if failed > 0 {
				w.log.Info("ledger writes recovered", "records", b.Len(), "failedAttempts", failed)
			}
			return true
		}
		failed++
		w.failures.Inc()
		if failed == 1 || failed%20 == 0 {
			// Logged once, then now and then: a down store must not flood
			// the log.
			w.log.Error("writing to the ledger failed; retrying", "records", b.Len(), "attempt", failed, "error", err)
		}
		select {
		case <-ctx.Done():
			w.log.Error("ledger records not written", "records", b.Len(), "error", err)
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

func (w *Writer) prune(ctx context.Context) {
	if w.opts.Retention <= 0 {
		return
	}
	n, err := w.store.Prune(ctx, time.Now().Add(-w.opts.Retention))
	if err != nil {
		w.log.Warn("pruning the ledger failed", "error", err)
		return
	}
	if n > 0 {
		w.log.Info("pruned the ledger", "records", n, "retention", w.opts.Retention)
	}
}

// Close stops accepting records and writes those queued (on SIGTERM)
// until ctx ends; records then unwritten are counted in the error and in
// the dropped metric. It does not close the Store.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
	}
	w.cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := w.queue.Len() + w.pending; n > 0 {
		// Lost: counted with the drops, though no gap record can be
		// written to a store that did not take them.
		w.dropped.Add(float64(n))
		return fmt.Errorf("closing the ledger writer: %d records not written: %w", n, errors.Join(ctx.Err()))
	}
	return nil
}

// Pending is the number of records not yet written.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queue.Len() + w.pending
}
