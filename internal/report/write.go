package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats are the output formats Write knows, as -o names them.
var Formats = []string{"table", "json", "csv", "html", "policyreport"}

// Write renders r in format, one of Formats.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case "table":
		return WriteTable(w, r)
	case "json":
		return WriteJSON(w, r)
	case "csv":
		return WriteCSV(w, r)
	case "html":
		return WriteHTML(w, r)
	case "policyreport":
		return WritePolicyReports(w, r, MaxPolicyReportBytes)
	}
	return fmt.Errorf("unknown report format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// WriteJSON writes r as one indented JSON document, the same bytes as
// encoding/json's Encoder with SetIndent("", "  ") writes. It encodes one
// element of the report's lists at a time, so that it never holds the
// whole document (23 MB for 10,000 images).
func WriteJSON(w io.Writer, r *Report) error {
	jw := &jsonWriter{w: bufio.NewWriterSize(w, 64<<10)}
	jw.enc = json.NewEncoder(&jw.buf)
	jw.enc.SetIndent("    ", "  ")
	jw.raw("{\n")
	jw.field("schemaVersion", r.SchemaVersion)
	jw.field("generated", r.Generated)
	jw.field("since", r.Since)
	jw.field("namespaceFilter", r.NamespaceFilter)
	writeList(jw, "images", r.Images)
	writeList(jw, "namespaces", r.Namespaces)
	writeList(jw, "trend", r.Trend)
	writeList(jw, "exceptions", r.Exceptions)
	jw.field("lostRecords", r.LostRecords)
	jw.raw("\n}\n")
	if jw.err != nil {
		return jw.err
	}
	return jw.w.Flush()
}

// jsonWriter writes the top level of WriteJSON's document; its encoder
// indents values one level into a list.
type jsonWriter struct {
	w      *bufio.Writer
	buf    bytes.Buffer
	enc    *json.Encoder
	fields int
	err    error
}

func (jw *jsonWriter) raw(s string) {
	if jw.err == nil {
		_, jw.err = jw.w.WriteString(s)
	}
}

// value writes v, indented as an element of a list in the document.
func (jw *jsonWriter) value(v any) {
	if jw.err != nil {
		return
	}
	jw.buf.Reset()
	if jw.err = jw.enc.Encode(v); jw.err == nil {
		_, jw.err = jw.w.Write(bytes.TrimSuffix(jw.buf.Bytes(), []byte("\n")))
	}
}

// key starts the next field of the document.
func (jw *jsonWriter) key(name string) {
	if jw.fields > 0 {
		jw.raw(",\n")
	}
	jw.fields++
	jw.raw(`  "` + name + `": `)
}

// field writes a field whose value is not a list. Its value is encoded
// at a list's depth; that only changes the indentation of an object or a
// list, which no such field holds.
func (jw *jsonWriter) field(name string, v any) {
	jw.key(name)
	jw.value(v)
}

func writeList[T any](jw *jsonWriter, name string, list []T) {
	jw.key(name)
	switch {
	case list == nil:
		jw.raw("null")
		return
	case len(list) == 0:
		jw.raw("[]")
		return
	}
	jw.raw("[\n")
	for i := range list {
		if i > 0 {
			jw.raw(",\n")
		}
		jw.raw("    ")
		jw.value(&list[i])
	}
	jw.raw("\n  ]")
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"image", "target", "namespace", "workloads", "first_admission", "last_admission", "admissions", "denials",
	"mirror_status", "last_copy", "scan_status", "scanner", "scanned_at", "critical", "high", "medium", "low", "unknown", "failing", "ignored"}

// WriteCSV writes one row per image and namespace, after a header row.
// Counts are the image's; scan_status, failing and ignored are the verdict
// in that namespace.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, img := range r.Images {
		for _, u := range img.Usage {
			var workloads []string
			for _, wl := range u.Workloads {
				workloads = append(workloads, wl.Kind+"/"+wl.Name)
			}
			lastCopy := ""
			if img.Mirror.LastCopy != nil {
				lastCopy = img.Mirror.LastCopy.Time.Format(time.RFC3339)
			}
			c := img.Scan.Counts
			if err := cw.Write([]string{img.Image, img.Target, u.Namespace, strings.Join(workloads, " "),
				u.FirstAdmission.Format(time.RFC3339), u.LastAdmission.Format(time.RFC3339), itoa(u.Admissions), itoa(u.Denials),
				img.Mirror.Status, lastCopy, u.ScanStatus, img.Scan.Scanner, timeOrEmpty(img.Scan.ScannedAt),
				strconv.Itoa(c.Critical), strconv.Itoa(c.High), strconv.Itoa(c.Medium), strconv.Itoa(c.Low), strconv.Itoa(c.Unknown),
				strconv.Itoa(u.Failing), strconv.Itoa(u.Ignored)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func timeOrEmpty(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339)
}

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 0, 64) + "%" }

// WriteTable writes the report for a terminal: images, namespaces, the
// trend and the exceptions, each as a table.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tNAMESPACES\tADMISSIONS\tDENIALS\tMIRROR\tSCAN\tCRITICAL\tHIGH\tMEDIUM\tLOW\tUNKNOWN\tLAST ADMISSION")
	for _, img := range r.Images {
		c := img.Scan.Counts
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", img.Image, strings.Join(img.Namespaces, ","),
			img.Admissions, img.Denials, img.Mirror.Status, img.Scan.Status, c.Critical, c.High, c.Medium, c.Low, c.Unknown,
			img.LastAdmission.Format(time.RFC3339))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NAMESPACE\tIMAGES\tMIRRORED\tSCANNED\tFAILING\tCRITICAL\tADMISSIONS\tDENIALS")
	for _, n := range r.Namespaces {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", n.Namespace, n.Images, pct(n.Mirrored), pct(n.Scanned), n.FailingImages,
			n.CriticalFindings, n.Admissions, n.Denials)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "DAY\tADMISSIONS\tDENIALS\tIMAGES\tCRITICAL/HIGH\tSCAN COVERAGE\tMEDIAN TO MIRRORED")
	for _, d := range r.Trend {
		med := "-"
		if d.MedianSecondsToMirrored != nil {
			med = (time.Duration(*d.MedianSecondsToMirrored) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", d.Date, d.Admissions, d.Denials, d.Images, d.ImagesCriticalHigh, pct(d.ScanCoverage), med)
	}
	if len(r.Exceptions) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "EXCEPTION\tEXPIRES\tSTATUS\tSUPPRESSES")
		for _, e := range r.Exceptions {
			sup := strings.Join(e.Suppresses, ",")
			if e.MatchesNothing {
				sup = "(matches nothing)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Entry, e.Expires, e.Status, sup)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, img := range r.Images {
		for _, f := range img.Scan.Failing {
			fmt.Fprintf(w, "%s: %s %s in %s %s: %s\n", img.Image, f.ID, f.Severity, f.Package, f.Installed, f.Reason)
		}
	}
	if r.LostRecords > 0 {
		fmt.Fprintf(w, "GAP: the ledger lost %d records in this window (its queue was full); counts may be low\n", r.LostRecords)
	}
	return nil
}
