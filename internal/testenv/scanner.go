package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reportScannerScript is a scanner command for tests of what happens
// around a scan: it prints a recorded report chosen by the scanned digest.
const reportScannerScript = `#!/bin/sh
dir=$1
for last; do :; done
echo "$last" >> "$dir/runs"
if [ -f "$dir/sleep" ]; then sleep "$(cat "$dir/sleep")"; fi
if [ -f "$dir/fail" ]; then echo "scanner exploded" >&2; exit 3; fi
d=${last##*@sha256:}
if [ -f "$dir/$d.json" ]; then cat "$dir/$d.json"; else cat "$dir/default.json"; fi
`

// ReportScanner is a scanner command (security.scanning.command) that
// prints recorded reports, for tests of the gate around the scanner (the
// real Trivy runs in TrivyCommand's tests and the e2e suite). For the
// image it is given (the last argument, image@sha256:HEX) it prints
// Dir/HEX.json, else Dir/default.json; it sleeps the seconds Dir/sleep
// holds when that file exists, fails while Dir/fail exists, and appends
// each image to Dir/runs.
type ReportScanner struct {
	Dir     string
	Command []string
}

// NewReportScanner writes the scanner into a new directory, with
// defaultReport (a report file) as Dir/default.json.
func NewReportScanner(t testing.TB, defaultReport string) *ReportScanner {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "scanner.sh")
	if err := os.WriteFile(script, []byte(reportScannerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &ReportScanner{Dir: dir, Command: []string{"sh", script, dir}}
	s.Report(t, "default", defaultReport)
	return s
}

// Report makes the scanner print the report file for digest ("sha256:…",
// or "default").
func (s *ReportScanner) Report(t testing.TB, digest, reportFile string) {
	t.Helper()
	data, err := os.ReadFile(reportFile)
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, strings.TrimPrefix(digest, "sha256:")+".json", string(data))
}

// Sleep makes each scan take seconds ("0.5"); Fail makes scans fail.
func (s *ReportScanner) Sleep(t testing.TB, seconds string) { s.write(t, "sleep", seconds) }

// Fail makes every scan fail, with "scanner exploded" on stderr.
func (s *ReportScanner) Fail(t testing.TB) { s.write(t, "fail", "") }

// Runs lists the images the scanner was run on, in order.
func (s *ReportScanner) Runs(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Dir, "runs"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

func (s *ReportScanner) write(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
