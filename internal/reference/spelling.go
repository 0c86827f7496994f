package reference

import (
	"net/netip"
	"strconv"
	"strings"
)

// dockerHubAliases are host names other than docker.io that reach Docker
// Hub: a runtime pulls the same image through any of them.
var dockerHubAliases = map[string]bool{
	legacyDefaultRegistry:     true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// CanonicalRegistry returns the spelling of a registry host that policy
// matching treats as its identity. Parse keeps hosts as distribution does
// (case and port as written), but a runtime reaches the same registry
// through other spellings: host names are case-insensitive, port 443 is the
// HTTPS default, an IPv6 address has several spellings, and Docker Hub
// answers under several names. Matching must
// not let any of them escape a pattern.
func CanonicalRegistry(host string) string {
	h := host
	if strings.ContainsFunc(h, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		h = strings.ToLower(h)
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		if port, err := strconv.Atoi(h[i+1:]); err == nil && port == 443 {
			h = h[:i]
		}
	}
	if strings.HasPrefix(h, "[") {
		// One IPv6 address has many spellings ("[::1]", "[0:0::1]").
		if end := strings.IndexByte(h, ']'); end > 0 {
			if ip, err := netip.ParseAddr(h[1:end]); err == nil {
				h = "[" + ip.String() + "]" + h[end+1:]
			}
		}
	}
	if dockerHubAliases[h] {
		return DefaultRegistry
	}
	return h
}

// Spellings returns the forms under which a pattern may name ref, each
// once: its name, name:tag, name@digest and name:tag@digest, for ref as
// parsed and for its canonical registry (see CanonicalRegistry). A pattern
// that matches any of them names the image. Adding or removing a digest, or
// spelling the registry differently, therefore never moves an image out of
// a pattern that names it by repository or by tag.
func Spellings(ref Reference) []string {
	out := make([]string, 0, 8)
	out = appendForms(out, ref.Registry, ref)
	if canon := CanonicalRegistry(ref.Registry); canon != ref.Registry {
		out = appendForms(out, canon, ref)
		if canon == DefaultRegistry && !strings.Contains(ref.Repository, "/") {
			// "index.docker.io:443/nginx" is Docker Hub's library/nginx.
			lib := ref
			lib.Repository = officialPrefix + ref.Repository
			out = appendForms(out, canon, lib)
		}
	}
	return out
}

// appendForms appends the forms of ref under registry, fullest first
// (messages name the first that matched). The shorter forms are prefixes
// of the fullest one, so this allocates once, or twice for tag and digest.
func appendForms(out []string, registry string, ref Reference) []string {
	ref.Registry = registry
	full := ref.String()
	name := full[:len(registry)+1+len(ref.Repository)]
	out = append(out, full)
	if ref.Tag != "" && ref.Digest != "" {
		out = append(out, full[:len(name)+1+len(ref.Tag)], name+"@"+ref.Digest)
	}
	return append(out, name)
}

// CanonicalPattern normalises a pattern as NormalizePattern does and then
// spells a literal registry host as CanonicalRegistry does, so that it can
// be matched against Spellings.
func CanonicalPattern(p string) string {
	p = NormalizePattern(p)
	host, rest, ok := strings.Cut(p, "/")
	if !ok || strings.ContainsAny(host, "*?") {
		return p
	}
	canon := CanonicalRegistry(host)
	if canon == host {
		return p
	}
	if canon == DefaultRegistry && !strings.ContainsAny(rest, "/*?") {
		rest = officialPrefix + rest
	}
	return canon + "/" + rest
}

// Plausible reports whether an image could exist in its registry as far as
// its name tells: Docker Hub names have exactly two path components
// ("library/nginx"), so "docker.io/library/a/b" cannot be pulled.
func Plausible(ref Reference) bool {
	return ref.Registry != DefaultRegistry || strings.Count(ref.Repository, "/") == 1
}
