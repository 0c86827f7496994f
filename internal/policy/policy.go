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
	// Mode is the enforcement mode of list verdicts; empty means the global mode.
	Mode config.Mode
}

type entry struct {
	path    string // key path, for messages
	pattern glob.Pattern
}

// New compiles the lists. Patterns are normalised like references, so
// "nginx" means "docker.io/library/nginx", and their registry is spelled
// canonically (see reference.CanonicalPattern).
func New(p config.Policies) (*Lists, error) {
	l := &Lists{Mode: p.Mode}
	var errs []error
	compile := func(key string, patterns []string) []entry {
		var out []entry
		for i, raw := range patterns {
			path := fmt.Sprintf("policies.%s[%d]", key, i)
			pat, err := glob.Compile(reference.CanonicalPattern(raw))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			out = append(out, entry{path: path, pattern: pat})
		}
		return out
	}
	l.allow = compile("allowList", p.AllowList)
	l.deny = compile("denyList", p.DenyList)
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
func (l *Lists) Check(original reference.Reference, swapped *reference.Reference, inTarget bool) Verdict {
	candidates := reference.Spellings(original)
	if swapped != nil {
		candidates = append(candidates, reference.Spellings(*swapped)...)
	}
	if e, s, ok := firstMatch(l.deny, candidates); ok {
		return Verdict{Denied: true, Rule: e.describe(), Reason: fmt.Sprintf("%s matches denyList entry %q", s, e.pattern)}
	}
	if len(l.allow) == 0 {
		return Verdict{}
	}
	if e, s, ok := firstMatch(l.allow, candidates); ok {
		return Verdict{Rule: e.describe(), Reason: fmt.Sprintf("%s matches allowList entry %q", s, e.pattern)}
	}
	if swapped != nil || inTarget {
		return Verdict{Reason: "swapped images pass the allowList"}
	}
	return Verdict{
		Denied: true,
		Rule:   "policies.allowList",
		Reason: fmt.Sprintf("%s is neither swapped nor in the allowList (%s)", original, l.allowed()),
	}
}

func (l *Lists) allowed() string {
	var s string
	for i, e := range l.allow {
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
