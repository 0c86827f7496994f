package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/registry"
)

// progressView shows how the copies of a mirror run go.
type progressView interface {
	start(jobs []copyJob)
	updater(i int) func(registry.Progress)
	finish(i int, o copyOutcome)
	stop()
}

// newProgressView draws bars on a terminal and prints plain lines
// otherwise (CI logs, pipes).
func newProgressView(w io.Writer, terminal bool) progressView {
	if terminal {
		return &barView{w: w, done: make(chan struct{})}
	}
	return &lineView{w: w}
}

// lineView prints one line per finished image.
type lineView struct {
	mu sync.Mutex
	w  io.Writer
}

func (v *lineView) start([]copyJob)                     {}
func (v *lineView) updater(int) func(registry.Progress) { return func(registry.Progress) {} }
func (v *lineView) stop()                               {}

func (v *lineView) finish(_ int, o copyOutcome) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch o.status() {
	case "failed":
		fmt.Fprintf(v.w, "failed  %s -> %s: %v\n", o.source, o.target, o.err)
	default:
		fmt.Fprintf(v.w, "%-7s %s -> %s (%s, %s)\n", o.status(), o.source, o.target, humanBytes(o.result.Bytes), o.duration.Round(time.Millisecond))
	}
}

// barView redraws one bar per image in place, a few times a second.
type barView struct {
	mu    sync.Mutex
	w     io.Writer
	rows  []barRow
	drawn int // lines drawn last time, to move the cursor back up
	done  chan struct{}
	wg    sync.WaitGroup
}

type barRow struct {
	name        string
	done, total int64 // drive the bar
	sent        int64 // bytes shown: progress while copying, the result once done
	status      string
}

func (v *barView) start(jobs []copyJob) {
	v.rows = make([]barRow, len(jobs))
	for i, j := range jobs {
		v.rows[i] = barRow{name: j.source.String(), status: "waiting"}
	}
	v.wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-v.done:
				return
			case <-tick.C:
				v.draw()
			}
		}
	})
}

func (v *barView) updater(i int) func(registry.Progress) {
	return func(p registry.Progress) {
		v.mu.Lock()
		v.rows[i].done, v.rows[i].total, v.rows[i].sent, v.rows[i].status = p.Done, p.Total, p.Done, "copying"
		v.mu.Unlock()
	}
}

func (v *barView) finish(i int, o copyOutcome) {
	v.mu.Lock()
	r := &v.rows[i]
	r.status = o.status()
	if o.err == nil {
		// A finished copy is a full bar, whatever the last update said.
		r.total = max(r.total, 1)
		r.done = r.total
		r.sent = o.result.Bytes
	}
	v.mu.Unlock()
}

func (v *barView) stop() {
	close(v.done)
	v.wg.Wait()
	v.draw()
}

func (v *barView) draw() {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn) // back to the first bar
	}
	const width = 30
	for _, r := range v.rows {
		filled := 0
		if r.total > 0 {
			filled = int(float64(width) * float64(r.done) / float64(r.total))
		}
		fmt.Fprintf(&b, "\x1b[2K%-8s [%s%s] %9s  %s\n", r.status, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), humanBytes(r.sent), r.name)
	}
	v.drawn = len(v.rows)
	io.WriteString(v.w, b.String())
}
