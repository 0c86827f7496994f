// Package policy decides whether an image may run under the allow and deny
// lists.
package policy

import (
	"errors"
	"fmt"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Lists is the compiled allowList and denyList.
type Lists struct {
	allow []entry
	deny  []entry
	// narrow are further allow lists, each of which an image must pass
	// as well (a namespace's ImagePolicy).
	narrow []narrowing
	// Mode is the enforcement mode of list verdicts; empty means the global mode.
	Mode config.Mode
}

type entry struct {
	path    string // key path, for messages
	pattern glob.Pattern
}

type narrowing struct {
	path    string // the list's key path, for messages
	entries []entry
}

// Source is list entries from outside the configuration file's policies
// section: a policy object in the cluster. Its entries are named by Path
// in verdicts, so that a denial says which object denied.
type Source struct {
	// Path prefixes the key paths of the entries, e.g.
	// "ClusterImagePolicy/base spec.policies" gives
	// "ClusterImagePolicy/base spec.policies.denyList[0]".
	Path string
	// AllowList and DenyList are wildcards as in config.Policies.
	AllowList []string
	DenyList  []string
	// Narrows makes AllowList a further list that every image must pass,
	// swapped or not, in addition to the allowList (an ImagePolicy's),
	// instead of more entries of the allowList. Without an allowList in
	// force it still narrows: it never widens anything.
	Narrows bool
}

// New compiles the lists. Patterns are normalised like references, so
// "nginx" means "docker.io/library/nginx", and their registry is spelled
// canonically (see reference.CanonicalPattern).
//
// Sources add entries: their deny entries to the denyList, their allow
// entries to the allowList or, for a Source that Narrows, as a list of its
// own that every image must also pass.
func New(p config.Policies, sources ...Source) (*Lists, error) {
	l := &Lists{Mode: p.Mode}
	var errs []error
	compile := func(key string, patterns []string) []entry {
		var out []entry
		for i, raw := range patterns {
			path := fmt.Sprintf("%s[%d]", key, i)
			pat, err := glob.Compile(reference.CanonicalPattern(raw))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			out = append(out, entry{path: path, pattern: pat})
		}
		return out
	}
	l.allow = compile("policies.allowList", p.AllowList)
	l.deny = compile("policies.denyList", p.DenyList)
	for _, src := range sources {
		l.deny = append(l.deny, compile(src.Path+".denyList", src.DenyList)...)
		allow := compile(src.Path+".allowList", src.AllowList)
		switch {
		case !src.Narrows:
			l.allow = append(l.allow, allow...)
		case len(src.AllowList) > 0:
			l.narrow = append(l.narrow, narrowing{path: src.Path + ".allowList", entries: allow})
		}
	}
	return l, errors.Join(errs...)
}

// Verdict is the lists' decision on one image.
type Verdict struct {
	Denied bool
	// Rule names the list entry that decided, e.g.
	// `policies.denyList[0] "docker.io/unknown/*"`; empty when no entry did.
	Rule string
	// Reason is a sentence for the user.
	Reason string
}

// Check decides on an image. original is the normalised image as written
// (for an image that is already a swap target, the source it was produced
// from); swapped is its swap target, or nil when it is not swapped.
// inTarget says the image already lives where swaps go, which counts as
// swapped.
//
// Each pattern is matched against every spelling of both references
// (reference.Spellings): repo, repo:tag, repo@digest and repo:tag@digest,
// under the registry as written and as spelled canonically. So adding or
// removing a digest, or writing a registry alias, never turns a deny into
// an allow.
//
// An image the allowList passes must then pass each narrowing list (see
// Source.Narrows) too, by matching one of its entries: being swapped does
// not pass those.
func (l *Lists) Check(original reference.Reference, swapped *reference.Reference, inTarget bool) Verdict {
	candidates := reference.Spellings(original)
	if swapped != nil {
		candidates = append(candidates, reference.Spellings(*swapped)...)
	}
	if e, s, ok := firstMatch(l.deny, candidates); ok {
		return Verdict{Denied: true, Rule: e.describe(), Reason: fmt.Sprintf("%s matches denyList entry %q", s, e.pattern)}
	}
	v := l.checkAllow(original, candidates, swapped != nil || inTarget)
	if v.Denied {
		return v
	}
	for _, n := range l.narrow {
		e, s, ok := firstMatch(n.entries, candidates)
		if !ok {
			return Verdict{
				Denied: true,
				Rule:   n.path,
				Reason: fmt.Sprintf("%s is not in %s (%s)", original, n.path, patterns(n.entries)),
			}
		}
		also := fmt.Sprintf("%s matches %s entry %q", s, n.path, e.pattern)
		if v.Reason == "" {
			v.Reason = also
		} else {
			v.Reason += "; " + also
		}
	}
	return v
}

// checkAllow applies the allowList.
func (l *Lists) checkAllow(original reference.Reference, candidates []string, swapped bool) Verdict {
	if len(l.allow) == 0 {
		return Verdict{}
	}
	if e, s, ok := firstMatch(l.allow, candidates); ok {
		return Verdict{Rule: e.describe(), Reason: fmt.Sprintf("%s matches allowList entry %q", s, e.pattern)}
	}
	if swapped {
		return Verdict{Reason: "swapped images pass the allowList"}
	}
	return Verdict{
		Denied: true,
		Rule:   "policies.allowList",
		Reason: fmt.Sprintf("%s is neither swapped nor in the allowList (%s)", original, patterns(l.allow)),
	}
}

// AllowList is every allowList entry in force, as written: the
// configuration's, then the sources' that do not narrow.
func (l *Lists) AllowList() []string {
	out := make([]string, len(l.allow))
	for i, e := range l.allow {
		out[i] = e.pattern.String()
	}
	return out
}

func patterns(entries []entry) string {
	var s string
	for i, e := range entries {
		if i > 0 {
			s += ", "
		}
		s += e.pattern.String()
	}
	return s
}

func (e entry) describe() string { return fmt.Sprintf("%s %q", e.path, e.pattern) }

func firstMatch(entries []entry, candidates []string) (entry, string, bool) {
	for _, e := range entries {
		for _, c := range candidates {
			if e.pattern.Match(c) {
				return e, c, true
			}
		}
	}
	return entry{}, "", false
}
