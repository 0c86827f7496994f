package testenv

import (
	"os"
	"testing"
)

// InCI reports whether this is CI (CI=true), where a missing tool is a
// failure rather than a reason to skip: a test that never runs proves
// nothing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require does nothing when ok; otherwise it skips the test with the
// message, or fails it when InCI. The message should say what is missing
// and how to get it.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
