package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/mirror"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

func TestBarViewRedrawsOneBarPerImage(t *testing.T) {
	a, _ := reference.Parse("quay.io/a/b:1")
	b, _ := reference.Parse("quay.io/c/d:2")
	jobs := []copyJob{{source: a, target: a}, {source: b, target: b}}
	var out bytes.Buffer
	v := newProgressView(&out, true)
	v.start(jobs)
	v.updater(0)(registry.Progress{Done: 50, Total: 100})
	v.finish(0, copyOutcome{copyJob: jobs[0], result: mirror.Result{Copied: true, Bytes: 100}})
	v.finish(1, copyOutcome{copyJob: jobs[1], err: errors.New("401 Unauthorized")})
	v.stop()
	last := out.String()[strings.LastIndex(out.String(), "\x1b[2K"+"copied"):]
	if !strings.Contains(last, "["+strings.Repeat("=", 30)+"]") || !strings.Contains(last, "quay.io/a/b:1") {
		t.Errorf("finished copy is not drawn as a full bar:\n%q", last)
	}
	if !strings.Contains(out.String(), "failed") || !strings.Contains(out.String(), "quay.io/c/d:2") {
		t.Errorf("failed copy is not drawn:\n%q", out.String())
	}
}

func TestLineViewPrintsOneLinePerImage(t *testing.T) {
	a, _ := reference.Parse("quay.io/a/b:1")
	var out bytes.Buffer
	v := newProgressView(&out, false)
	v.start([]copyJob{{source: a, target: a}})
	v.finish(0, copyOutcome{copyJob: copyJob{source: a, target: a}, result: mirror.Result{Copied: false}})
	v.stop()
	if got := out.String(); !strings.HasPrefix(got, "present quay.io/a/b:1 -> quay.io/a/b:1 (0 B,") || strings.Count(got, "\n") != 1 {
		t.Errorf("line view printed %q", got)
	}
}
