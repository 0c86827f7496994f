package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// LockVersion is the version of the mappings file format.
const LockVersion = 1

// Lock is a mappings file: for each original image, the reference a
// rewrite wrote and the digests behind it, so that a later rewrite is
// reproducible (image-swapper rewrite --write-mappings / --mappings).
type Lock struct {
	Version int `json:"version"`
	// Images is keyed by the normalised original reference.
	Images map[string]LockEntry `json:"images"`
}

// LockEntry is one original image's mapping.
type LockEntry struct {
	// Target is the reference written into manifests (target@digest when
	// pinned).
	Target string `json:"target"`
	// Digest is the target manifest's digest.
	Digest string `json:"digest"`
	// SourceDigest is the digest the original resolved to, to report when
	// upstream moves a tag.
	SourceDigest string `json:"sourceDigest,omitempty"`
}

// ReadLock reads a mappings file.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: not a mappings file: %w", path, err)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("%s: mappings version %d, want %d", path, l.Version, LockVersion)
	}
	for orig, e := range l.Images {
		if e.Target == "" {
			return nil, fmt.Errorf("%s: images[%q].target is empty", path, orig)
		}
	}
	return &l, nil
}

// Write writes the mappings file atomically (a temporary file renamed into
// place), so an interrupted run never leaves half a file.
func (l *Lock) Write(path string) error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mappings-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Lookup returns the entry of a normalised original; a nil Lock has none.
func (l *Lock) Lookup(original string) (LockEntry, bool) {
	if l == nil {
		return LockEntry{}, false
	}
	e, ok := l.Images[original]
	return e, ok
}
