package testenv

import (
	"fmt"
	"testing"
	"time"
)

// Eventually calls check every interval until it returns nil or timeout
// passes, and returns its last error. Timeouts are generous bounds for a
// loaded machine, not performance assertions.
func Eventually(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// WaitFor polls ok until it is true, and fails the test when within
// passes first (a generous bound, not a performance assertion).
func WaitFor(t testing.TB, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
