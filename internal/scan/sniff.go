package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// The report formats, as security.scanning.provider names them.
const (
	FormatTrivy = "trivy"
	FormatGrype = "grype"
)

// ErrUnknownFormat says a report is neither Trivy's schema-2 JSON nor
// Grype's JSON.
var ErrUnknownFormat = errors.New("not a Trivy (SchemaVersion 2) or Grype JSON report")

// ReadFile reads and parses a report file of either format.
func ReadFile(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	return Parse(path, data)
}

// Parse sniffs the format of a report and parses it. name identifies the
// input in errors (a file name, or "trivy output for IMAGE").
//
// A JSON object with SchemaVersion is Trivy's, one with matches is
// Grype's; anything else, including Trivy's legacy top-level array, is an
// error matching ErrUnknownFormat.
func Parse(name string, data []byte) (*Report, error) {
	format, err := Sniff(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var r *Report
	switch format {
	case FormatTrivy:
		r, err = parseTrivy(data)
	default:
		r, err = parseGrype(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	r.Raw = data
	return r, nil
}

// Sniff returns FormatTrivy or FormatGrype for a report, judging by its
// top-level keys only.
func Sniff(data []byte) (string, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return "", fmt.Errorf("empty report: %w", ErrUnknownFormat)
	}
	if trimmed[0] == '[' {
		return "", fmt.Errorf("a top-level JSON array is Trivy's legacy format, before SchemaVersion 2; run a newer Trivy: %w", ErrUnknownFormat)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &keys); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnknownFormat, err)
	}
	_, trivy := keys["SchemaVersion"]
	_, grype := keys["matches"]
	switch {
	case trivy && !grype:
		return FormatTrivy, nil
	case grype && !trivy:
		return FormatGrype, nil
	case trivy && grype:
		return "", fmt.Errorf("has both SchemaVersion and matches: %w", ErrUnknownFormat)
	}
	return "", ErrUnknownFormat
}
