// Package report builds the compliance report of a cluster's images from
// the ledger: which images ran where, whether each is mirrored and scanned,
// which fail policy, which exceptions apply, and how that changed day by
// day.
//
// Build streams what it reads from the store and aggregates it as it
// reads, so that the report holds one aggregate per image, namespace and
// day, never the ledger's records. Writers render a Report as a table, JSON (the schema in
// docs/reports.md), CSV, PolicyReports or one HTML page.
package report

import (
	"time"

	"github.com/image-swapper/image-swapper/internal/scan"
)

// SchemaVersion is the version of the JSON schema. Keys are only ever
// added within a version; a change that removes or redefines one raises it.
const SchemaVersion = 1

// Report is the compliance report. Its JSON form is a public contract,
// documented in docs/reports.md.
type Report struct {
	SchemaVersion int       `json:"schemaVersion"`
	Generated     time.Time `json:"generated"`
	// Since is the start of the window admissions were read from; nil for
	// the whole ledger.
	Since *time.Time `json:"since"`
	// NamespaceFilter is the --namespace wildcard, "" for all.
	NamespaceFilter string      `json:"namespaceFilter"`
	Images          []Image     `json:"images"`
	Namespaces      []Namespace `json:"namespaces"`
	Trend           []Day       `json:"trend"`
	Exceptions      []Exception `json:"exceptions"`
	// LostRecords counts the records the ledger dropped in the window
	// because its queue was full: the numbers above may miss them.
	LostRecords int64 `json:"lostRecords"`
}

// Image is one image (by normalised reference) and what the ledger knows
// about it.
type Image struct {
	// Image is the normalised reference (the reference as written when
	// it does not parse).
	Image string `json:"image"`
	// Target is the mirror reference of the image's newest swap; "" when
	// it was never swapped.
	Target string `json:"target"`
	// Digests are the digests admissions and copies named, sorted.
	Digests []string `json:"digests"`
	// Namespaces are the namespaces that ran the image, sorted.
	Namespaces []string   `json:"namespaces"`
	Workloads  []Workload `json:"workloads"`
	// FirstAdmission and LastAdmission are the times of the oldest and
	// newest admission records of the image in the window.
	FirstAdmission time.Time `json:"firstAdmission"`
	LastAdmission  time.Time `json:"lastAdmission"`
	// Admissions counts admission requests (Pod CREATE and UPDATE) that
	// decided on the image; Denials those that denied it, DenialsByRule
	// by the rule that denied it. DryRunDenials are denials a dry run
	// (dryRun: true or a dry-run request) only reported.
	Admissions    int64            `json:"admissions"`
	Denials       int64            `json:"denials"`
	DenialsByRule map[string]int64 `json:"denialsByRule"`
	DryRunDenials int64            `json:"dryRunDenials"`
	// Violations are the policy violations recorded against the image, by
	// rule and mode (enforce, warn, audit, or dryRun for an enforce
	// violation under a dry run).
	Violations []Violation `json:"violations"`
	Mirror     Mirror      `json:"mirror"`
	Scan       Scan        `json:"scan"`
	// Usage is the image in each namespace, in the order of Namespaces.
	Usage []Usage `json:"usage"`
}

// Workload is a Pod's controller, or the Pod when it has none.
type Workload struct {
	Namespace string `json:"namespace"`
	// Kind is the owner's kind (ReplicaSet, Job, ...) or Pod.
	Kind string `json:"kind"`
	// Name is the owner's name, or the Pod's name ("web-*" for a Pod
	// the API server names from its generateName).
	Name string `json:"name"`
}

// Violation counts the admissions that recorded one rule's violation in
// one mode.
type Violation struct {
	Rule  string `json:"rule"`
	Mode  string `json:"mode"`
	Count int64  `json:"count"`
	// Message is the newest violation's message.
	Message string `json:"message"`
}

// Mirror statuses.
const (
	MirrorPresent = "present" // the newest copy succeeded
	MirrorFailed  = "failed"  // the newest copy failed
	MirrorMissing = "missing" // the image was swapped, or meant to be, but never copied
	MirrorNone    = "none"    // nothing to mirror: the rules keep or deny the image
)

// Mirror is the image's mirror status.
type Mirror struct {
	// Status is MirrorPresent, MirrorFailed, MirrorMissing or MirrorNone.
	Status string `json:"status"`
	// LastCopy is the newest copy record of the image; nil for none.
	LastCopy *Copy `json:"lastCopy"`
	// FirstMirrored is when the image was first copied or found present;
	// nil if never.
	FirstMirrored *time.Time `json:"firstMirrored"`
}

// Copy is a copy record.
type Copy struct {
	Time            time.Time `json:"time"`
	Target          string    `json:"target"`
	Result          string    `json:"result"`
	Digest          string    `json:"digest"`
	Bytes           int64     `json:"bytes"`
	DurationSeconds float64   `json:"durationSeconds"`
	Error           string    `json:"error"`
}

// Scan statuses beyond scan.Result's pass and fail.
const (
	ScanPass    = string(scan.ResultPass)
	ScanFail    = string(scan.ResultFail)
	ScanPending = "pending" // no scan of the image is recorded
	ScanSkipped = "skipped" // security.scanning.skipImages names it
)

// Scan is the vulnerability verdict of the image's newest scan, judged by
// the configuration's current security.scanning policy.
type Scan struct {
	// Status is ScanPass, ScanFail, ScanPending or ScanSkipped. An image
	// fails when it fails in any namespace (ignore entries may be
	// restricted to namespaces).
	Status         string     `json:"status"`
	Scanner        string     `json:"scanner"`
	ScannerVersion string     `json:"scannerVersion"`
	DBTime         *time.Time `json:"dbTime"`
	ScannedAt      *time.Time `json:"scannedAt"`
	// Digest is the index (or single manifest) digest scanned;
	// Platforms the platform manifests scanned.
	Digest    string   `json:"digest"`
	Manifests []string `json:"manifests"`
	// Counts are all findings by severity, ignored ones included; the
	// highest of each over the platforms.
	Counts  scan.Counts `json:"counts"`
	Failing []Finding   `json:"failing"`
	Ignored []Ignored   `json:"ignored"`
}

// Finding is a failing finding.
type Finding struct {
	ID        string   `json:"id"`
	Severity  string   `json:"severity"`
	CVSS      *float64 `json:"cvss"`
	Package   string   `json:"package"`
	Installed string   `json:"installed"`
	Fixed     string   `json:"fixed"`
	// Reason names the threshold it trips.
	Reason string `json:"reason"`
	// Namespaces are those it fails in, when not all of the image's.
	Namespaces []string `json:"namespaces,omitempty"`
}

// Ignored is a finding an exception kept from failing the image.
type Ignored struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Package  string `json:"package"`
	// By names the exception: an ignore entry
	// ("security.scanning.ignore[0] (CVE-2019-18276)"), a VEX statement
	// or security.scanning.ignoreUnfixed.
	By string `json:"by"`
	// Expires is the ignore entry's last day (YYYY-MM-DD); nil for VEX
	// and ignoreUnfixed.
	Expires *string `json:"expires"`
	// Namespaces are those it is ignored in, when not all of the image's.
	Namespaces []string `json:"namespaces,omitempty"`
}

// Usage is one image in one namespace.
type Usage struct {
	Namespace      string     `json:"namespace"`
	Workloads      []Workload `json:"workloads"`
	FirstAdmission time.Time  `json:"firstAdmission"`
	LastAdmission  time.Time  `json:"lastAdmission"`
	Admissions     int64      `json:"admissions"`
	Denials        int64      `json:"denials"`
	// ScanStatus is the verdict in this namespace; Failing and Ignored
	// count its findings.
	ScanStatus string `json:"scanStatus"`
	Failing    int    `json:"failing"`
	Ignored    int    `json:"ignored"`
	// Worst is the severity of the worst failing finding here; "" when
	// none fails.
	Worst      string      `json:"worst"`
	Violations []Violation `json:"violations"`
}

// Namespace summarises the images of one namespace.
type Namespace struct {
	Namespace string `json:"namespace"`
	Images    int    `json:"images"`
	// Mirrored and Scanned are the shares (0 to 1) of the images that are
	// present in the mirror and that have a scan.
	Mirrored float64 `json:"mirrored"`
	Scanned  float64 `json:"scanned"`
	// FailingImages counts images whose verdict here is fail.
	FailingImages int `json:"failingImages"`
	// Counts are the findings of its images by severity (each image
	// counted once); CriticalFindings is Counts.Critical.
	Counts           scan.Counts `json:"counts"`
	CriticalFindings int         `json:"criticalFindings"`
	Admissions       int64       `json:"admissions"`
	Denials          int64       `json:"denials"`
}

// Day is one UTC day of the trend.
type Day struct {
	// Date is YYYY-MM-DD.
	Date       string `json:"date"`
	Admissions int64  `json:"admissions"`
	Denials    int64  `json:"denials"`
	// Images counts the distinct images admitted that day;
	// ImagesCriticalHigh those whose newest scan by the end of the day
	// had a CRITICAL or HIGH finding; Scanned those with any scan by
	// then, ScanCoverage their share.
	Images             int     `json:"images"`
	ImagesCriticalHigh int     `json:"imagesCriticalHigh"`
	Scanned            int     `json:"scanned"`
	ScanCoverage       float64 `json:"scanCoverage"`
	// MedianSecondsToMirrored is the median, over the images first
	// admitted that day and mirrored since, of the time from first
	// admission to first mirrored (0 for an image mirrored before it was
	// admitted); nil when there is none.
	MedianSecondsToMirrored *float64 `json:"medianSecondsToMirrored"`
}

// Exception statuses.
const (
	ExceptionActive   = "active"
	ExceptionExpiring = "expiring" // expires within ExpiringWithin
	ExceptionExpired  = "expired"
)

// ExpiringWithin is how close to its expiry an exception is reported as
// expiring.
const ExpiringWithin = 14 * 24 * time.Hour

// Exception is one security.scanning.ignore entry.
type Exception struct {
	// Entry names it as Ignored.By does.
	Entry      string   `json:"entry"`
	ID         string   `json:"id"`
	Images     []string `json:"images"`
	Namespaces []string `json:"namespaces"`
	// Expires is its last day, YYYY-MM-DD.
	Expires string `json:"expires"`
	Reason  string `json:"reason"`
	// Status is ExceptionActive, ExceptionExpiring or ExceptionExpired;
	// DaysLeft the whole days until it stops applying (negative once
	// expired).
	Status   string `json:"status"`
	DaysLeft int    `json:"daysLeft"`
	// Suppresses are the images whose findings it ignores.
	Suppresses []string `json:"suppresses"`
	// MatchesNothing says it ignores no finding of any image.
	MatchesNothing bool `json:"matchesNothing"`
}
