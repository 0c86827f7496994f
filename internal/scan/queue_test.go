package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Fifty Pods of one image make one scanner run: the real executable
// records each run, and waits for a file so that all Submits happen while
// the first run is in flight.
func TestQueueDedupesSubmitsOfOneDigest(t *testing.T) {
	abs, _ := filepath.Abs("testdata/trivy/debian-buster.json")
	release := filepath.Join(t.TempDir(), "release")
	r, recordPath := testRunner(t, "FAKE_REPORT="+abs, "FAKE_WAIT_FOR="+release)
	var done atomic.Int32
	q := NewQueue(r.Scan, QueueOptions{Concurrency: 4, OnDone: func(ScanResult) { done.Add(1) }})
	defer q.Close()

	ref := mustRef(t, "registry.example.com/app:1.0@"+testDigest)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.Submit(context.Background(), ref); err != nil {
				t.Errorf("Submit: %v", err)
			}
		}()
	}
	wg.Wait()
	if d := q.Depth(); d != 1 {
		t.Errorf("Depth = %d after 50 Submits of one digest, want 1", d)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := q.Wait(context.Background(), testDigest)
	if err != nil || res.Err != nil {
		t.Fatalf("Wait: %v, %v", err, res.Err)
	}
	if len(res.Report.Findings) != 2 || res.Attempts != 1 {
		t.Errorf("result has %d findings after %d attempts", len(res.Report.Findings), res.Attempts)
	}
	if runs := readRecords(t, recordPath); len(runs) != 1 {
		t.Errorf("the scanner ran %d times for 50 Submits of one digest, want 1", len(runs))
	}
	if done.Load() != 1 || q.Depth() != 0 {
		t.Errorf("OnDone called %d times, depth %d; want 1 and 0", done.Load(), q.Depth())
	}
}

// blockingScan is a ScanFunc whose runs wait for release and count.
type blockingScan struct {
	release chan struct{}
	runs    atomic.Int32
	fail    int32 // the first fail runs return a ScanError
}

func (b *blockingScan) scan(ctx context.Context, ref reference.Reference) (*Report, error) {
	n := b.runs.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n <= b.fail {
		return nil, &ScanError{Image: ref.String(), Command: "trivy", ExitCode: 1, Err: errors.New("exit status 1")}
	}
	return &Report{Format: FormatTrivy}, nil
}

func digestN(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func TestQueueSubmitNeverBlocksWhenFull(t *testing.T) {
	b := &blockingScan{release: make(chan struct{})}
	q := NewQueue(b.scan, QueueOptions{Concurrency: 1, Capacity: 2})
	defer q.Close()
	defer close(b.release)
	var errs []error
	for _, c := range []string{"1", "2", "3", "4", "5"} {
		errs = append(errs, q.Submit(context.Background(), mustRef(t, "registry.example.com/app@"+digestN(c))))
	}
	// One running (once the worker took it) and two waiting fit; the
	// Submits beyond fail at once.
	var full int
	for _, err := range errs {
		if errors.Is(err, ErrQueueFull) {
			full++
		} else if err != nil {
			t.Errorf("Submit: %v", err)
		}
	}
	if full < 2 {
		t.Errorf("%d Submits reported a full queue, want at least 2 of 5 with capacity 2", full)
	}
}

func TestQueueWaitIsBoundedByItsContext(t *testing.T) {
	b := &blockingScan{release: make(chan struct{})}
	q := NewQueue(b.scan, QueueOptions{})
	defer q.Close()
	defer close(b.release)
	ref := mustRef(t, "registry.example.com/app@"+digestN("a"))
	if err := q.Submit(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Wait(ctx, ref.Digest); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := q.Wait(context.Background(), digestN("b")); !errors.Is(err, ErrNotQueued) {
		t.Errorf("Wait for an unknown digest = %v, want ErrNotQueued", err)
	}
	if err := q.Submit(context.Background(), mustRef(t, "nginx:1.27")); err == nil {
		t.Error("Submit of an image without digest succeeded")
	}
}

func TestQueueRetriesFailedRunsWithBackoff(t *testing.T) {
	b := &blockingScan{release: make(chan struct{}), fail: 2}
	close(b.release)
	q := NewQueue(b.scan, QueueOptions{Retries: 2, Backoff: time.Millisecond})
	defer q.Close()
	ref := mustRef(t, "registry.example.com/app@"+digestN("c"))
	if err := q.Submit(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	res, err := q.Wait(context.Background(), ref.Digest)
	if err != nil || res.Err != nil || res.Attempts != 3 || b.runs.Load() != 3 {
		t.Errorf("Wait = %v, result err %v after %d attempts (%d runs); want success on the third", err, res.Err, res.Attempts, b.runs.Load())
	}

	b2 := &blockingScan{release: make(chan struct{}), fail: 10}
	close(b2.release)
	q2 := NewQueue(b2.scan, QueueOptions{Retries: 1, Backoff: time.Millisecond})
	defer q2.Close()
	if err := q2.Submit(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	res, _ = q2.Wait(context.Background(), ref.Digest)
	var se *ScanError
	if !errors.As(res.Err, &se) || res.Attempts != 2 {
		t.Errorf("result err %v after %d attempts, want the ScanError after 2", res.Err, res.Attempts)
	}
	if v := Errored(res.Err); v.Result != ResultError {
		t.Errorf("a failed scan's verdict is %s, want error", v.Result)
	}
}

func TestQueueDoesNotRetryUnreadableReports(t *testing.T) {
	var runs atomic.Int32
	q := NewQueue(func(ctx context.Context, ref reference.Reference) (*Report, error) {
		runs.Add(1)
		return Parse("output", []byte("not json"))
	}, QueueOptions{Backoff: time.Millisecond})
	defer q.Close()
	ref := mustRef(t, "registry.example.com/app@"+digestN("d"))
	if err := q.Submit(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	res, _ := q.Wait(context.Background(), ref.Digest)
	if !errors.Is(res.Err, ErrUnknownFormat) || runs.Load() != 1 {
		t.Errorf("result %v after %d runs, want ErrUnknownFormat after 1", res.Err, runs.Load())
	}
}

func TestQueueCloseCancelsRunningScans(t *testing.T) {
	b := &blockingScan{release: make(chan struct{})}
	q := NewQueue(b.scan, QueueOptions{Concurrency: 1})
	ref := mustRef(t, "registry.example.com/app@"+digestN("e"))
	if err := q.Submit(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	q.Close()
	res, err := q.Wait(context.Background(), ref.Digest)
	if err != nil || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("after Close: Wait = %v, result %v; want the cancellation", err, res.Err)
	}
	if err := q.Submit(context.Background(), ref); !errors.Is(err, ErrQueueClosed) {
		t.Errorf("Submit after Close = %v, want ErrQueueClosed", err)
	}
}

func TestQueueRescansADigestSubmittedAfterItsScanFinished(t *testing.T) {
	b := &blockingScan{release: make(chan struct{})}
	close(b.release)
	q := NewQueue(b.scan, QueueOptions{Retain: 1})
	defer q.Close()
	for _, c := range []string{"1", "1", "2"} {
		ref := mustRef(t, "registry.example.com/app@"+digestN(c))
		if err := q.Submit(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Wait(context.Background(), ref.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if b.runs.Load() != 3 {
		t.Errorf("%d runs, want 3 (a finished scan does not dedupe a later Submit)", b.runs.Load())
	}
	if _, err := q.Wait(context.Background(), digestN("1")); !errors.Is(err, ErrNotQueued) {
		t.Errorf("Wait for an evicted result = %v, want ErrNotQueued", err)
	}
}
