package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestReportJSONStreamsWhatTheEncoderWrites holds WriteJSON, which writes
// one list element at a time, to the bytes encoding/json writes for the
// whole report: a field added to Report but not to WriteJSON fails it.
func TestReportJSONStreamsWhatTheEncoderWrites(t *testing.T) {
	st := openSQLite(t)
	seed(t, st)
	seeded := build(t, st, "")
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	withSince := *seeded
	withSince.Since, withSince.NamespaceFilter, withSince.LostRecords = &since, "team-*", 7
	for _, tc := range []struct {
		name string
		r    *Report
	}{
		{"the seeded report", seeded},
		{"a report with a window, a filter and lost records", &withSince},
		{"an empty report", &Report{SchemaVersion: SchemaVersion, Images: []Image{}, Namespaces: []Namespace{}, Trend: []Day{}, Exceptions: []Exception{}}},
		{"a report with nil lists", &Report{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(tc.r); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := WriteJSON(&got, tc.r); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("WriteJSON differs from encoding/json:\n got %s\nwant %s", got.Bytes(), want.Bytes())
			}
		})
	}
}

func TestReportWorkloadSetKeepsEachWorkloadOnce(t *testing.T) {
	for _, n := range []int{1, smallWorkloadSet, smallWorkloadSet + 1, 100} {
		var s workloadSet
		for round := range 2 {
			for i := range n {
				s.add(Workload{Namespace: "shop", Kind: "Job", Name: fmt.Sprintf("backup-%03d", i)})
			}
			got := sortedWorkloads(s)
			if len(got) != n {
				t.Fatalf("%d workloads added %d times: the set holds %d", n, round+1, len(got))
			}
			for i, w := range got {
				if want := fmt.Sprintf("backup-%03d", i); w.Name != want {
					t.Fatalf("%d workloads: [%d] is %q, want %q", n, i, w.Name, want)
				}
			}
		}
	}
}
