package rules

import (
	"fmt"
	"strings"

	"github.com/image-swapper/image-swapper/internal/glob"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// Collision is the error for two swap rules that send different images to
// one target, with a pair of images that proves it. Rule B comes after rule
// A in precedence order.
type Collision struct {
	A, B    string // rule names
	SourceA reference.Reference
	SourceB reference.Reference
	Target  reference.Reference
}

func (c *Collision) Error() string {
	return fmt.Sprintf("%s and %s: both send images to one target: %s (by %s) and %s (by %s) would both become %s; give them distinct targets or keep {registry}/{repository} in both",
		c.A, c.B, c.SourceA, c.A, c.SourceB, c.B, c.Target)
}

// findCollision looks for a target that both swap rules render, each from
// a different source. Every rendering of a rule starts with its fixed
// prefix (the template's literal start, with what the rule's matcher pins
// filled in), so two rules can only meet when one prefix starts the other.
// Then candidate targets are built from that prefix and from each rule's
// own sample images, and inverted through both rules (Source), which proves
// any collision it reports.
func findCollision(a, b *Rule) (*Collision, bool) {
	pa, pb := a.fixedPrefix(), b.fixedPrefix()
	if !strings.HasPrefix(pa, pb) && !strings.HasPrefix(pb, pa) {
		return nil, false
	}
	longer := pa
	if len(pb) > len(pa) {
		longer = pb
	}
	var targets []reference.Reference
	for _, tail := range []string{"zz/q", "q", "zz/yy/q", ""} {
		if t, err := reference.Parse(longer + tail + ":1"); err == nil {
			targets = append(targets, t)
		}
	}
	for _, r := range []*Rule{a, b} {
		for _, src := range r.samples() {
			if t, err := r.Target(src); err == nil {
				targets = append(targets, t)
			}
		}
	}
	for _, t := range targets {
		srcA, okA := a.Source(t)
		srcB, okB := b.Source(t)
		if okA && okB && srcA != srcB && reference.Plausible(srcA) && reference.Plausible(srcB) {
			return &Collision{A: a.Name, B: b.Name, SourceA: srcA, SourceB: srcB, Target: t}, true
		}
	}
	return nil, false
}

// fixedPrefix is the text every target of the rule starts with: the
// template's literal parts, and its placeholders as far as the rule's
// matcher fixes them (a pinned registry, a repository pattern's literal
// start).
func (r *Rule) fixedPrefix() string {
	if r.Tier == TierImage {
		if t, err := r.Target(r.image); err == nil {
			return t.Name()
		}
		return r.target.Prefix()
	}
	pinned := r.pinnedRegistry()
	var repoStart string // the literal start of the repository path
	if r.Tier == TierRepository {
		if _, rest, ok := strings.Cut(r.pattern.Prefix(), "/"); ok {
			repoStart = rest
		}
	}
	var b strings.Builder
	for _, p := range r.target.parts {
		switch p.kind {
		case literal:
			b.WriteString(p.text)
			continue
		case phRegistry:
			if pinned == "" {
				return b.String()
			}
			b.WriteString(reference.PathSafeRegistry(pinned))
			continue
		case phImage:
			if pinned != "" {
				b.WriteString(reference.PathSafeRegistry(pinned) + "/" + repoStart)
			}
		case phRepository:
			b.WriteString(repoStart)
		}
		return b.String()
	}
	return b.String()
}

// samples are images the rule matches, made from its matcher by filling
// each wildcard with letters, with the tag "1".
func (r *Rule) samples() []reference.Reference {
	var names []string
	switch r.Tier {
	case TierImage:
		return []reference.Reference{r.image}
	case TierRepository:
		names = []string{fill(r.pattern)}
	case TierRegistry:
		host := fill(r.pattern)
		names = []string{host + "/zz/q", host + "/q"}
	default:
		names = []string{"docker.io/zz/q", "quay.io/zz/q"}
	}
	var out []reference.Reference
	for _, n := range names {
		if ref, err := reference.Parse(n + ":1"); err == nil && r.matches(ref, ref.Name()) {
			out = append(out, ref)
		}
	}
	return out
}

// fill writes a pattern with each '*' as "zz" and each '?' as "z".
func fill(p glob.Pattern) string {
	return strings.NewReplacer("*", "zz", "?", "z").Replace(p.String())
}
