// Package reference parses and normalises container image references the way
// Kubernetes and containerd do (the distribution/reference grammar with
// ParseNormalizedNamed semantics), so that every decision image-swapper makes
// is about the same image the kubelet would pull.
//
// Grammar accepted by [Parse]:
//
//	reference        := name [ ":" tag ] [ "@" digest ]
//	name             := [ registry "/" ] path
//	registry         := host [ ":" port ]
//	host             := domain-name | "[" IPv6address "]"
//	domain-name      := domain-component [ "." domain-component ]*
//	domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
//	port             := /[0-9]+/
//	path             := path-component [ "/" path-component ]*   ; at most 255 characters
//	path-component   := /[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*/
//	tag              := /[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/
//	digest           := "sha256:" 64 hex | "sha384:" 96 hex | "sha512:" 128 hex  ; lowercase hex
//
// The first "/"-separated component is a registry only when it contains "."
// or ":", is "localhost", or contains an upper-case letter (path components
// are always lower case, so distribution/reference ≥ v0.5.0 treats it as a
// host); otherwise the whole name is a Docker Hub path.
package reference

import (
	"fmt"
	"strings"
)

const (
	// DefaultRegistry is the registry of names that do not name one (Docker Hub).
	DefaultRegistry = "docker.io"

	// DefaultTag is the tag of a reference that has neither tag nor digest.
	DefaultTag = "latest"

	// MaxRepositoryLength is the longest repository path accepted, counted
	// after "library/" is added and without the registry (as in
	// distribution/reference v0.6.0).
	MaxRepositoryLength = 255

	// MaxTagLength is the longest tag accepted.
	MaxTagLength = 128

	// legacyDefaultRegistry is Docker Hub's old "index" host; it names the
	// same registry as DefaultRegistry.
	legacyDefaultRegistry = "index.docker.io"

	// officialPrefix is the Docker Hub namespace of single-component names.
	officialPrefix = "library/"
)

// Reference is a normalised image reference.
//
// A Reference returned by Parse always has a Registry and a Repository, and a
// Tag, a Digest or both.
type Reference struct {
	Registry   string // "docker.io", "localhost:5000", "[::1]:5000", "quay.io"
	Repository string // path within the registry: "library/nginx"
	Tag        string // "" when absent (only possible when Digest is set)
	Digest     string // "sha256:<64 hex>" or ""
}

// String returns the fully qualified form Registry/Repository[:Tag][@Digest],
// which Parse maps back to the same Reference.
func (r Reference) String() string {
	var b strings.Builder
	b.Grow(len(r.Registry) + 1 + len(r.Repository) + 1 + len(r.Tag) + 1 + len(r.Digest))
	b.WriteString(r.Registry)
	b.WriteByte('/')
	b.WriteString(r.Repository)
	if r.Tag != "" {
		b.WriteByte(':')
		b.WriteString(r.Tag)
	}
	if r.Digest != "" {
		b.WriteByte('@')
		b.WriteString(r.Digest)
	}
	return b.String()
}

// Name returns Registry/Repository, the reference without tag or digest.
func (r Reference) Name() string {
	return r.Registry + "/" + r.Repository
}

// Error is returned for a string that is not a valid image reference. Reason
// says what is wrong with it, so the message can be shown to users as is.
type Error struct {
	Input  string // the string given to Parse
	Reason string // what is wrong, e.g. "tag is empty"
}

// Error reads like: invalid image reference "Nginx": repository name must be lowercase.
func (e *Error) Error() string {
	return fmt.Sprintf("invalid image reference %q: %s", e.Input, e.Reason)
}
