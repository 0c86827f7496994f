// Package store is image-swapper's ledger: every admission decision, copy
// and scan, kept in an embedded SQLite file or in a PostgreSQL database that
// several replicas share.
//
// A Store reads and writes synchronously; a Writer sits in front of it so
// that callers (the webhook's admissions) only enqueue records and never
// wait for, or fail because of, the database.
package store

import (
	"context"
	"errors"
	"time"
)

// Driver names a Store implementation.
type Driver string

// The drivers.
const (
	SQLite   Driver = "sqlite"
	Postgres Driver = "postgres"
)

// ErrSchemaTooNew is returned by Open for a database whose schema was
// written by a newer image-swapper: this binary would misread it, so it
// refuses it and leaves it untouched.
var ErrSchemaTooNew = errors.New("the database schema is newer than this image-swapper knows")

// Store is a ledger database. Implementations are safe for concurrent use.
type Store interface {
	// Summarizer streams the aggregates reports read.
	Summarizer
	// Claims share work between the replicas of one database.
	Claims
	// Write inserts a batch in one transaction. It is idempotent on
	// b.Key: writing a batch whose key was already committed (a retry
	// after an ambiguous failure) writes nothing and returns nil.
	Write(ctx context.Context, b *Batch) error
	// Admissions lists admission records matching q, newest first.
	Admissions(ctx context.Context, q Query) ([]AdmissionRecord, error)
	// Copies lists copy records matching q, newest first.
	Copies(ctx context.Context, q Query) ([]CopyRecord, error)
	// Scans lists scan records matching q, newest first, without their
	// findings and raw reports.
	Scans(ctx context.Context, q Query) ([]ScanRecord, error)
	// LatestScan returns the newest scan of the image with this digest
	// (index or platform manifest), with findings and raw report, or
	// ErrNotFound.
	LatestScan(ctx context.Context, digest string) (*ScanRecord, error)
	// SwappedImages lists the images admission swapped at or after since
	// (see SwappedImage).
	SwappedImages(ctx context.Context, since time.Time) ([]SwappedImage, error)
	// StaleScans lists the newest scans older than scannedBefore of the
	// images admitted at or after usedSince, oldest first (see
	// sqlStore.StaleScans).
	StaleScans(ctx context.Context, scannedBefore, usedSince time.Time) ([]ScanRecord, error)
	// Gaps lists gap records whose span ends at or after since, newest
	// first.
	Gaps(ctx context.Context, since time.Time) ([]Gap, error)
	// Prune deletes records older than before and returns how many.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// SchemaVersion is the schema version of the database.
	SchemaVersion(ctx context.Context) (int, error)
	// Close releases the database.
	Close() error
}

// ErrNotFound says a lookup found no record.
var ErrNotFound = errors.New("no such record")

// Batch is what one transaction writes.
type Batch struct {
	// Key identifies the batch across retries; see Store.Write. A zero
	// key is not deduplicated.
	Key        [16]byte
	Admissions []AdmissionRecord
	Copies     []CopyRecord
	Scans      []ScanRecord
	Gaps       []Gap
}

// Len is the number of records in b.
func (b *Batch) Len() int {
	return len(b.Admissions) + len(b.Copies) + len(b.Scans) + len(b.Gaps)
}

// Endpoints of the webhook.
const (
	EndpointMutate   = "mutate"
	EndpointValidate = "validate"
)

// Container kinds.
const (
	ContainerRegular   = "container"
	ContainerInit      = "init"
	ContainerEphemeral = "ephemeral"
)

// AdmissionRecord is one image decision of one admission request.
type AdmissionRecord struct {
	Time time.Time
	// UID is the AdmissionRequest's uid.
	UID string
	// Operation is CREATE or UPDATE.
	Operation string
	// Endpoint is EndpointMutate or EndpointValidate.
	Endpoint string
	DryRun   bool
	// Namespace and Pod say where the image was; Pod is the name or, for
	// a Pod named by the API server, its generateName followed by '*'.
	Namespace string
	Pod       string
	// OwnerKind and OwnerName are the Pod's controller, if any.
	OwnerKind string
	OwnerName string
	// Container is the container's name, ContainerKind one of
	// ContainerRegular, ContainerInit and ContainerEphemeral.
	Container     string
	ContainerKind string
	// User is the requesting user.
	User string
	// Image is the reference as written, Normalized its normalised form.
	Image      string
	Normalized string
	// Action is swap, keep or deny; Target the reference the Pod runs.
	Action string
	Target string
	// Digest is the image's digest, when known.
	Digest     string
	Rule       string
	Violations []Violation
	// Fallback says a planned swap fell back to the original image.
	Fallback bool
}

// Violation is a policy verdict against an image.
type Violation struct {
	Rule    string `json:"rule"`
	Mode    string `json:"mode"`
	Message string `json:"message"`
}

// CopyRecord is one finished copy into the mirror.
type CopyRecord struct {
	Time      time.Time
	Source    string
	Target    string
	Digest    string
	Platforms []string
	Bytes     int64
	Duration  time.Duration
	// Result is "copied", "present" or "failed" (whatever the caller
	// reports); Error the failure's message.
	Result string
	Error  string
}

// Severities a scan counts, from worst.
var Severities = []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}

// ScanRecord is one vulnerability scan of one image.
type ScanRecord struct {
	Time  time.Time
	Image string
	// IndexDigest is the digest the image reference resolves to (an index
	// for a multi-platform image); ManifestDigest the platform manifest
	// scanned. They are equal for a single-platform image.
	IndexDigest    string
	ManifestDigest string
	Scanner        string
	ScannerVersion string
	// DBTime is when the scanner's vulnerability database was built, when
	// the report says; zero otherwise.
	DBTime time.Time
	// Counts by severity, keyed by the names in Severities.
	Counts   map[string]int
	Findings []Finding
	// Report is the scanner's raw report; it is stored compressed.
	Report []byte
}

// Finding is one vulnerability in a scanned image.
type Finding struct {
	ID               string
	Package          string
	InstalledVersion string
	FixedVersion     string
	Severity         string
	CVSS             float64
	Status           string
}

// Gap records that records were lost: Count of them, produced between From
// and To, were dropped because the queue was full.
type Gap struct {
	From  time.Time
	To    time.Time
	Count int64
}

// Query selects records.
type Query struct {
	// Since keeps records at or after this time; zero keeps all.
	Since time.Time
	// Namespace and Image are wildcards (see internal/glob) that admission
	// records must match: Image matches the image as written or
	// normalised. Empty matches everything.
	Namespace string
	Image     string
	// Limit bounds how many records are returned; 0 means no bound.
	Limit int
}
