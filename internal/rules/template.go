package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// DefaultTarget is the target template of the rules that sourceRegistries
// implies. Keeping the source registry in the path makes it collision-free.
const DefaultTarget = "{target}/{registry}/{repository}"

// placeholder is one of the names a target template may use.
type placeholder int

const (
	literal      placeholder = iota
	phRegistry               // source registry, path-safe
	phRepository             // path within the source registry
	phImage                  // {registry}/{repository}
	phSuffix                 // rest of the repository after a repository rule's literal prefix
)

var placeholders = map[string]placeholder{
	"registry":   phRegistry,
	"repository": phRepository,
	"image":      phImage,
	"suffix":     phSuffix,
}

type part struct {
	kind placeholder
	text string
}

// Template is a compiled target template such as
// "{target}/{registry}/{repository}". {target} is substituted at compile
// time; the other placeholders come from each image.
type Template struct {
	raw   string
	parts []part
}

// ParseTemplate compiles a target template. target is the configured
// targetRegistry, substituted for {target}.
func ParseTemplate(raw, target string) (Template, error) {
	t := Template{raw: raw}
	rest := raw
	var lit strings.Builder
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			lit.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return Template{}, fmt.Errorf("target template %q: unbalanced '}'", raw)
		}
		lit.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return Template{}, fmt.Errorf("target template %q: unclosed '{'", raw)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		if name == "target" {
			if target == "" {
				return Template{}, fmt.Errorf("target template %q uses {target} but targetRegistry is not set", raw)
			}
			lit.WriteString(target)
			continue
		}
		kind, ok := placeholders[name]
		if !ok {
			return Template{}, fmt.Errorf("target template %q: unknown placeholder {%s} (want {target}, {registry}, {repository}, {image} or {suffix})", raw, escapeLine(name))
		}
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{kind: literal, text: lit.String()})
			lit.Reset()
		}
		t.parts = append(t.parts, part{kind: kind})
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{kind: literal, text: lit.String()})
	}
	if len(t.parts) > 0 && t.parts[0].kind == literal {
		t.parts[0].text = canonicalHost(t.parts[0].text)
	}
	return t, nil
}

// canonicalHost rewrites the Docker Hub alias at the start of a template's
// leading literal, so that what the template produces is recognised in its
// normalised form.
func canonicalHost(s string) string {
	const alias = "index.docker.io/"
	if strings.HasPrefix(s, alias) {
		return reference.DefaultRegistry + "/" + s[len(alias):]
	}
	return s
}

// String returns the template as written.
func (t Template) String() string { return t.raw }

// uses reports whether the template contains the placeholder.
func (t Template) uses(p placeholder) bool {
	for _, pt := range t.parts {
		if pt.kind == p {
			return true
		}
	}
	return false
}

// Static reports whether the template has no per-image placeholder.
func (t Template) Static() bool {
	return len(t.parts) <= 1 && (len(t.parts) == 0 || t.parts[0].kind == literal)
}

// Prefix is the literal text every rendering starts with.
func (t Template) Prefix() string {
	if len(t.parts) > 0 && t.parts[0].kind == literal {
		return t.parts[0].text
	}
	return ""
}

// Render returns the repository name (without tag or digest) for ref.
// suffix is the value of {suffix}.
func (t Template) Render(ref reference.Reference, suffix string) string {
	var b strings.Builder
	b.Grow(len(t.raw) + len(ref.Registry) + len(ref.Repository))
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			b.WriteString(p.text)
		case phRegistry:
			b.WriteString(reference.PathSafeRegistry(ref.Registry))
		case phRepository:
			b.WriteString(ref.Repository)
		case phImage:
			b.WriteString(reference.PathSafeRegistry(ref.Registry))
			b.WriteByte('/')
			b.WriteString(ref.Repository)
		case phSuffix:
			b.WriteString(suffix)
		}
	}
	return b.String()
}

// escapeLine writes s as Go would inside quotes, so that a name holding a
// newline cannot split an error message over lines.
func escapeLine(s string) string { return strings.Trim(strconv.Quote(s), `"`) }
