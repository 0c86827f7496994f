package report

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// manyImages is a report of n images in one namespace, every other one
// failing.
func manyImages(n int) *Report {
	r := &Report{Generated: time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)}
	for i := range n {
		status := ScanPass
		if i%2 == 0 {
			status = ScanFail
		}
		img := fmt.Sprintf("docker.io/team/app-%04d:1.0", i)
		r.Images = append(r.Images, Image{Image: img, Usage: []Usage{{Namespace: "shop", ScanStatus: status, Failing: 1, Worst: "HIGH",
			Workloads: []Workload{{Namespace: "shop", Kind: "ReplicaSet", Name: fmt.Sprintf("app-%04d-7d9f", i)}}}}})
	}
	return r
}

func TestReportPolicyReportsStayUnderTheSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		images     int
		maxBytes   int
		wantParts  int
		wantPassed bool
	}{
		{"a small namespace is one report with its passes", 10, MaxPolicyReportBytes, 1, true},
		{"a large one drops its passing results first", 200, 100_000, 1, false},
		{"a larger one is split into parts", 2000, 100_000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reports, err := PolicyReports(manyImages(tc.images), tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantParts > 0 && len(reports) != tc.wantParts {
				t.Fatalf("got %d reports, want %d", len(reports), tc.wantParts)
			}
			if tc.wantParts == 0 && len(reports) < 2 {
				t.Fatalf("got %d reports, want several parts", len(reports))
			}
			fails, passes := 0, 0
			names := map[string]bool{}
			for _, p := range reports {
				b, _ := json.Marshal(p)
				if len(b) > tc.maxBytes {
					t.Errorf("%s is %d bytes, over %d", p.Metadata.Name, len(b), tc.maxBytes)
				}
				if names[p.Metadata.Name] {
					t.Errorf("two reports are named %s", p.Metadata.Name)
				}
				names[p.Metadata.Name] = true
				fails += p.Summary.Fail
				passes += p.Summary.Pass
				if p.Summary.Fail+p.Summary.Pass != len(p.Results) {
					t.Errorf("%s: summary %+v does not count its %d results", p.Metadata.Name, p.Summary, len(p.Results))
				}
			}
			if fails != tc.images/2 {
				t.Errorf("%d failing results, want %d: failures are never dropped", fails, tc.images/2)
			}
			if (passes > 0) != tc.wantPassed {
				t.Errorf("%d passing results; want them kept: %v", passes, tc.wantPassed)
			}
			if !tc.wantPassed && reports[0].Metadata.Annotations[AnnotationDroppedPass] != fmt.Sprint(tc.images/2) {
				t.Errorf("annotations %v, want %s=%d", reports[0].Metadata.Annotations, AnnotationDroppedPass, tc.images/2)
			}
		})
	}
}
