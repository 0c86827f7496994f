package report

import (
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

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
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
