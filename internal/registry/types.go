// Package registry talks to OCI registries: it checks that images exist,
// resolves tags to digests and copies images between registries, in
// process, with per-host endpoints and credentials from the config.
package registry

import (
	"errors"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Descriptor identifies a manifest in a registry.
type Descriptor struct {
	// Digest is "sha256:<hex>".
	Digest string
	// MediaType is the manifest's media type (an index or a manifest).
	MediaType string
	// Size is the manifest's size in bytes.
	Size int64
}

// Platform is an OS/architecture[/variant] such as linux/arm64/v8.
type Platform struct {
	OS, Architecture, Variant string
}

// CopyOptions tune one copy.
type CopyOptions struct {
	// Platforms, when set, copies only these platforms of an index. That
	// writes a new index, so the target digest differs from the source's.
	Platforms []Platform
	// Overwrite lets the copy move a target tag that points elsewhere.
	Overwrite bool
	// CopySignatures also copies cosign .sig/.att tags and OCI referrers.
	CopySignatures bool
	// Progress, when set, is called as blobs are written; it must be cheap.
	Progress func(Progress)
	// PullKeychain, when set, holds this copy's credentials for the
	// source, such as a Pod's imagePullSecrets. It is consulted after the
	// config's credentials for the source host (which win) and before
	// the Client's WithPullKeychain; it is resolved when the source is
	// first reached, and only if the config has no credentials for it.
	PullKeychain authn.Keychain
}

// Progress reports how far a copy is.
type Progress struct {
	// Done and Total are bytes; Total is 0 while unknown.
	Done, Total int64
}

// CopyResult says what a copy did.
type CopyResult struct {
	// Digest of the target manifest (equal to the source's unless
	// platforms were filtered).
	Digest string
	// Copied is false when the target already had the image.
	Copied bool
	// Bytes is how many blob bytes were uploaded (mounted and existing
	// blobs count 0).
	Bytes int64
	// Duration of the copy.
	Duration time.Duration
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrTagExists: the target tag points to another digest and
	// overwriting is off.
	ErrTagExists = errors.New("target tag exists with another digest (set mirroring.overwrite: true to move it)")
	// ErrDigestMismatch: after a copy the target digest is not the source's.
	ErrDigestMismatch = errors.New("target digest differs from source digest after copy")
)
