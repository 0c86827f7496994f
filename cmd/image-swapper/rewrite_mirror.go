package main

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/manifest"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// registryFlags are rewrite's flags that reach registries (reimage's
// features).
type registryFlags struct {
	copy          bool
	pinDigest     bool
	check         bool
	writeMappings string
	mappings      string
}

func (f registryFlags) needed() bool {
	return f.copy || f.pinDigest || f.check || f.writeMappings != "" || f.mappings != ""
}

// registryOutcome is what the registry pass found: targets to replace,
// the mappings to write, warnings, and problems that stop the rewrite.
type registryOutcome struct {
	retarget map[string]string
	lock     *manifest.Lock
	warnings []string
	problems []string
}

// swapItem is one distinct swap of a rewrite.
type swapItem struct {
	original string // normalised
	target   string // the engine's target
	src, dst reference.Reference
}

// resolveRegistries copies, checks and pins what a rewrite swaps, as the
// flags say. It runs the per-image work concurrently; the mirror service
// bounds the copies.
func resolveRegistries(ctx context.Context, m *mirroring, res manifest.Result, f registryFlags, prior *manifest.Lock) (*registryOutcome, error) {
	swaps, kept, err := distinctImages(res)
	if err != nil {
		return nil, err
	}
	out := &registryOutcome{
		retarget: map[string]string{},
		lock:     &manifest.Lock{Version: manifest.LockVersion, Images: map[string]manifest.LockEntry{}},
	}
	var mu sync.Mutex
	note := func(list *[]string, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		*list = append(*list, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	for _, s := range swaps {
		wg.Go(func() {
			entry, ok := resolveSwap(ctx, m, s, f, prior, func(format string, args ...any) { note(&out.warnings, format, args...) }, func(format string, args ...any) { note(&out.problems, format, args...) })
			if !ok {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			out.lock.Images[s.original] = entry
			if entry.Target != s.target {
				out.retarget[s.target] = entry.Target
			}
		})
	}
	if f.check {
		for _, k := range kept {
			wg.Go(func() {
				if _, ok, err := m.client.Exists(ctx, k); err != nil {
					note(&out.problems, "%s: cannot check that it exists: %v", k, err)
				} else if !ok {
					note(&out.problems, "%s: does not exist", k)
				}
			})
		}
	}
	wg.Wait()
	sort.Strings(out.warnings)
	sort.Strings(out.problems)
	return out, nil
}

// resolveSwap handles one swap and returns its mappings entry.
func resolveSwap(ctx context.Context, m *mirroring, s swapItem, f registryFlags, prior *manifest.Lock, warn, problem func(string, ...any)) (manifest.LockEntry, bool) {
	entry := manifest.LockEntry{Target: s.target}
	src := s.src
	if locked, ok := prior.Lookup(s.original); ok {
		entry = locked
		lockedName, err := reference.Parse(locked.Target)
		if err == nil && lockedName.Name() != s.dst.Name() {
			warn("%s: the mappings file sends it to %s, the config to %s; using the mappings file", s.original, locked.Target, s.target)
		}
		if now, err := m.client.Resolve(ctx, s.src); err != nil {
			warn("%s: cannot check the upstream digest: %v", s.original, err)
		} else if locked.SourceDigest != "" && now.Digest != locked.SourceDigest {
			warn("%s: upstream digest changed: the mappings file has %s, the registry now %s", s.original, locked.SourceDigest, now.Digest)
		}
		if locked.SourceDigest != "" {
			src.Digest = locked.SourceDigest // copy exactly what was locked
		}
		if !f.copy && !f.check {
			return entry, true
		}
	}
	if entry.SourceDigest == "" && (f.writeMappings != "" || f.pinDigest) {
		desc, err := m.client.Resolve(ctx, s.src)
		if err != nil {
			problem("%s: resolving the source: %v", s.original, err)
			return entry, false
		}
		entry.SourceDigest = desc.Digest
	}
	dst := s.dst
	switch {
	case f.copy:
		r, err := m.service.Ensure(ctx, src, dst)
		if err != nil {
			problem("%s: copying to %s: %v", s.original, dst, err)
			return entry, false
		}
		entry.Digest = r.Digest
	default:
		desc, ok, err := m.client.Exists(ctx, dst)
		switch {
		case err != nil:
			problem("%s: checking %s: %v", s.original, dst, err)
			return entry, false
		case !ok:
			problem("%s: %s is not in the mirror (use --copy to copy it)", s.original, dst)
			return entry, false
		}
		entry.Digest = desc.Digest
	}
	if f.pinDigest && entry.Digest != "" {
		dst.Digest = entry.Digest
		entry.Target = dst.String()
	}
	return entry, true
}

// distinctImages lists the distinct swaps and the distinct kept images of a
// rewrite.
func distinctImages(res manifest.Result) ([]swapItem, []reference.Reference, error) {
	var swaps []swapItem
	var kept []reference.Reference
	seen := map[string]bool{}
	for _, f := range res.Findings {
		d := f.Decision
		if seen[d.Image+"\x00"+d.Target] {
			continue
		}
		seen[d.Image+"\x00"+d.Target] = true
		switch d.Action {
		case config.ActionSwap:
			src, dst, err := d.References()
			if err != nil {
				return nil, nil, err
			}
			swaps = append(swaps, swapItem{original: d.Normalized, target: d.Target, src: src, dst: dst})
		case config.ActionKeep:
			if ref, err := reference.Parse(d.Image); err == nil {
				kept = append(kept, ref)
			}
		}
	}
	return swaps, kept, nil
}
