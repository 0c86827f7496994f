package scan

import (
	"fmt"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// ignoreEntry is a compiled security.scanning.ignore entry.
type ignoreEntry struct {
	name       string // "security.scanning.ignore[0] (CVE-2019-18276)"
	id         string
	images     []glob.Pattern
	namespaces []glob.Pattern
	// end is the first instant the entry no longer applies: the start of
	// the day after expires, UTC.
	end     time.Time
	expires string
	reason  string
}

func compileIgnore(i int, e config.IgnoreEntry) (ignoreEntry, error) {
	path := fmt.Sprintf("security.scanning.ignore[%d]", i)
	out := ignoreEntry{name: fmt.Sprintf("%s (%s)", path, e.ID), id: e.ID, expires: e.Expires, reason: e.Reason}
	if e.ID == "" {
		return out, fmt.Errorf("%s.id: required", path)
	}
	end, ok := e.IgnoreExpiry()
	if !ok {
		return out, fmt.Errorf("%s.expires: %q is not a date YYYY-MM-DD", path, e.Expires)
	}
	out.end = end
	var err error
	if out.images, err = compileImages(path+".images", e.Images); err != nil {
		return out, err
	}
	for j, ns := range e.Namespaces {
		pat, err := glob.Compile(ns)
		if err != nil {
			return out, fmt.Errorf("%s.namespaces[%d]: %w", path, j, err)
		}
		out.namespaces = append(out.namespaces, pat)
	}
	return out, nil
}

// compileImages compiles image wildcards the way policy lists are, so
// that "nginx" names docker.io/library/nginx and registry aliases match.
func compileImages(path string, patterns []string) ([]glob.Pattern, error) {
	var out []glob.Pattern
	for i, raw := range patterns {
		pat, err := glob.Compile(reference.CanonicalPattern(raw))
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
		}
		out = append(out, pat)
	}
	return out, nil
}

// matchesImage reports whether any pattern names any spelling of image.
func matchesImage(patterns []glob.Pattern, spellings []string) bool {
	for _, p := range patterns {
		for _, s := range spellings {
			if p.Match(s) {
				return true
			}
		}
	}
	return false
}

// applies reports whether the entry suppresses f in image (its
// spellings) and namespace at now. An entry restricted to namespaces
// never applies where there is no namespace (the CLI).
func (e *ignoreEntry) applies(f *Finding, spellings []string, namespace string, now time.Time) bool {
	if !strings.EqualFold(e.id, f.ID) || !now.Before(e.end) {
		return false
	}
	if len(e.images) > 0 && !matchesImage(e.images, spellings) {
		return false
	}
	if len(e.namespaces) > 0 {
		if namespace == "" {
			return false
		}
		found := false
		for _, p := range e.namespaces {
			if p.Match(namespace) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
