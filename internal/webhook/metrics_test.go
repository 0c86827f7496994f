package webhook

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCopyFinishedCountsByResult(t *testing.T) {
	m := NewMetrics()
	m.CopyFinished(true, 1000, time.Second, nil)
	m.CopyFinished(false, 0, 10*time.Millisecond, nil)
	m.CopyFinished(false, 0, 0, errors.New("401 Unauthorized"))
	for result, want := range map[string]float64{"copied": 1, "present": 1, "failed": 1} {
		if got := testutil.ToFloat64(m.copies.WithLabelValues(result)); got != want {
			t.Errorf("copies{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := testutil.ToFloat64(m.copyBytes); got != 1000 {
		t.Errorf("copy bytes = %v, want 1000", got)
	}
	if n := testutil.CollectAndCount(m.copyDuration); n != 1 {
		t.Errorf("copy duration collected %d series, want 1", n)
	}
}
