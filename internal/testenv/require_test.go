package testenv

import (
	"fmt"
	"runtime"
	"testing"
)

// recorder is a testing.TB whose Skipf and Fatalf record the message and
// stop the goroutine, as the real ones do, without ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// require runs Require on r in a goroutine of its own, which Skipf and
// Fatalf may stop.
func (r *recorder) require(ok bool, format string, args ...any) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Require(r, ok, format, args...)
	}()
	<-done
}

func TestRequire(t *testing.T) {
	tests := []struct {
		name        string
		ci          string
		ok          bool
		wantSkipped string
		wantFailed  string
	}{
		{"a tool that is there neither skips nor fails", "", true, "", ""},
		{"a tool that is there neither skips nor fails in CI", "true", true, "", ""},
		{"a missing tool skips outside CI", "", false, "helm is missing", ""},
		{"a missing tool skips when CI is not exactly true", "1", false, "helm is missing", ""},
		{"a missing tool fails in CI", "true", false, "", "CI=true: helm is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			r.require(tt.ok, "%s is missing", "helm")
			if r.skipped != tt.wantSkipped || r.failed != tt.wantFailed {
				t.Errorf("Require skipped %q and failed %q; want skipped %q and failed %q", r.skipped, r.failed, tt.wantSkipped, tt.wantFailed)
			}
		})
	}
}
