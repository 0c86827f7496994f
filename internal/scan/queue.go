package scan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Queue errors.
var (
	// ErrQueueFull says Submit found the queue at capacity; the caller
	// treats the image as pending and submits it again later.
	ErrQueueFull = errors.New("scan queue is full")
	// ErrQueueClosed says the queue was closed.
	ErrQueueClosed = errors.New("scan queue is closed")
	// ErrNotQueued says Wait was asked about a digest that was never
	// submitted, or whose result was evicted.
	ErrNotQueued = errors.New("no scan of this digest was submitted")
)

// ScanFunc scans one image by digest; (*Runner).Scan is one.
type ScanFunc func(ctx context.Context, ref reference.Reference) (*Report, error)

// QueueOptions tune a Queue. Zero values mean the defaults.
type QueueOptions struct {
	// Concurrency is how many scans run at once (default 2).
	Concurrency int
	// Capacity is how many scans may wait to run (default 256); Submit
	// beyond it returns ErrQueueFull rather than blocking.
	Capacity int
	// Retries is how many times a failed run is retried (default 2; -1
	// for none), waiting Backoff (default 2s), doubled after each retry
	// up to one minute. Unreadable reports are not retried: the scanner
	// would print the same again.
	Retries int
	Backoff time.Duration
	// Retain is how many finished results are kept for Wait (default
	// 1024); the oldest are forgotten first.
	Retain int
	// OnDone, when set, is called once per finished scan, from the
	// worker that ran it and before Wait returns the result (record it
	// in the store here).
	OnDone func(ScanResult)
}

// ScanResult is a finished scan: a report, or the error of its last
// attempt.
type ScanResult struct {
	Ref      reference.Reference
	Report   *Report
	Err      error
	Attempts int
	Started  time.Time
	Finished time.Time
}

// Queue runs scans in the background, each digest once at a time: N
// Submits of one digest while it is queued or running make one scan. It is
// never run inside an admission request: Submit never blocks, and Wait is
// bounded by its context.
type Queue struct {
	scan ScanFunc
	opts QueueOptions

	ctx    context.Context // cancelled by Close; bounds every scan
	cancel context.CancelFunc
	work   chan *job
	wg     sync.WaitGroup

	mu     sync.Mutex
	jobs   map[string]*job // by digest
	done   []string        // finished digests, oldest first, for eviction
	active int             // queued or running
	closed bool
}

type job struct {
	ref    reference.Reference
	ch     chan struct{} // closed when result is set
	result ScanResult
}

// NewQueue starts a queue's workers; Close stops them.
func NewQueue(scan ScanFunc, opts QueueOptions) *Queue {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.Capacity <= 0 {
		opts.Capacity = 256
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = 2
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Retain <= 0 {
		opts.Retain = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{scan: scan, opts: opts, ctx: ctx, cancel: cancel, work: make(chan *job, opts.Capacity), jobs: map[string]*job{}}
	for range opts.Concurrency {
		q.wg.Add(1)
		go q.worker()
	}
	return q
}

// Submit queues a scan of ref (which must have a digest) unless one of
// that digest is already queued or running. It never blocks. ctx is only
// checked: the scan belongs to the queue, not to the caller's request.
func (q *Queue) Submit(ctx context.Context, ref reference.Reference) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ref.Digest == "" {
		return fmt.Errorf("queueing a scan of %s: the image has no digest; scans are by digest", ref)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrQueueClosed
	}
	if j, ok := q.jobs[ref.Digest]; ok && !j.finished() {
		return nil
	}
	j := &job{ref: ref, ch: make(chan struct{})}
	select {
	case q.work <- j:
	default:
		return fmt.Errorf("queueing a scan of %s: %w (%d waiting)", ref, ErrQueueFull, q.opts.Capacity)
	}
	q.jobs[ref.Digest] = j
	q.active++
	return nil
}

// Wait returns the result of the latest scan of digest once it finishes,
// or ctx's error if it does not finish in time (the scan goes on).
func (q *Queue) Wait(ctx context.Context, digest string) (ScanResult, error) {
	q.mu.Lock()
	j, ok := q.jobs[digest]
	q.mu.Unlock()
	if !ok {
		return ScanResult{}, fmt.Errorf("waiting for a scan of %s: %w", digest, ErrNotQueued)
	}
	select {
	case <-j.ch:
		return j.result, nil
	case <-ctx.Done():
		return ScanResult{}, fmt.Errorf("waiting for a scan of %s: %w", digest, ctx.Err())
	}
}

// Depth is the number of scans queued or running.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active
}

// Close stops accepting scans, cancels those queued or running (their
// results are the cancellation error) and waits for the workers to exit.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.work)
	}
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

func (j *job) finished() bool {
	select {
	case <-j.ch:
		return true
	default:
		return false
	}
}

func (q *Queue) worker() {
	defer q.wg.Done()
	for j := range q.work {
		res := q.run(j.ref)
		// OnDone first, so that whatever it records (the store, a
		// verdict cache) is there when Wait returns.
		if q.opts.OnDone != nil {
			q.opts.OnDone(res)
		}
		q.finish(j, res)
	}
}

// run scans ref with retries and backoff, until the queue is closed.
func (q *Queue) run(ref reference.Reference) ScanResult {
	res := ScanResult{Ref: ref, Started: time.Now()}
	backoff := q.opts.Backoff
	for attempt := 0; ; attempt++ {
		res.Attempts = attempt + 1
		if err := q.ctx.Err(); err != nil {
			res.Err = fmt.Errorf("scanning %s: %w", ref, err)
			break
		}
		res.Report, res.Err = q.scan(q.ctx, ref)
		if res.Err == nil || attempt >= q.opts.Retries || !retryable(res.Err) || q.ctx.Err() != nil {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-q.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, time.Minute)
	}
	res.Finished = time.Now()
	return res
}

// retryable: a scanner that failed to run or exited non-zero may succeed
// next time (a registry hiccup); a report it printed but we cannot read
// would be printed again.
func retryable(err error) bool {
	var se *ScanError
	return errors.As(err, &se)
}

func (q *Queue) finish(j *job, res ScanResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j.result = res
	close(j.ch)
	q.active--
	q.done = append(q.done, j.ref.Digest)
	for len(q.done) > q.opts.Retain {
		old := q.done[0]
		q.done = q.done[1:]
		if cur, ok := q.jobs[old]; ok && cur.finished() && !q.recent(old) {
			delete(q.jobs, old)
		}
	}
}

// recent reports whether digest finished again later than its oldest
// entry in q.done (then the later entry evicts it).
func (q *Queue) recent(digest string) bool {
	for _, d := range q.done {
		if d == digest {
			return true
		}
	}
	return false
}
