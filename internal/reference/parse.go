package reference

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parse parses and normalises an image reference: "nginx" becomes
// docker.io/library/nginx:latest, "index.docker.io" becomes "docker.io", a
// tag and a digest given together are both kept, and a reference with
// neither gets the tag "latest".
//
// It is a hand-written scanner rather than a regular expression because it
// runs for every container of every admitted Pod; on success it allocates
// only when it has to add "library/".
//
// Errors are of type *Error and name the input and the problem.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, &Error{Input: s, Reason: "reference is empty"}
	}
	if i := indexSpace(s); i >= 0 {
		return Reference{}, &Error{Input: s, Reason: fmt.Sprintf("contains whitespace at byte %d", i)}
	}
	if isImageID(s) {
		// distribution/reference refuses these: a bare 64-hex string is an
		// image ID, and treating it as a Docker Hub name would be ambiguous.
		return Reference{}, &Error{Input: s, Reason: "a 64-character hexadecimal string is an image ID, not a repository name"}
	}

	var ref Reference
	rest := s
	if at := strings.IndexByte(s, '@'); at >= 0 {
		rest, ref.Digest = s[:at], s[at+1:]
		if reason := checkDigest(ref.Digest); reason != "" {
			return Reference{}, &Error{Input: s, Reason: reason}
		}
	}

	// The tag separator is a ':' after the last '/': one before it belongs
	// to a registry port ("localhost:5000/app").
	name := rest
	lastSlash := strings.LastIndexByte(rest, '/')
	if lastSlash < 0 && strings.HasPrefix(rest, "[") {
		return Reference{}, &Error{Input: s, Reason: fmt.Sprintf("registry host %q must be followed by '/' and a repository path", rest)}
	}
	if c := strings.IndexByte(rest[lastSlash+1:], ':'); c >= 0 {
		c += lastSlash + 1
		name, ref.Tag = rest[:c], rest[c+1:]
		if reason := checkTag(ref.Tag); reason != "" {
			return Reference{}, &Error{Input: s, Reason: reason}
		}
	} else if ref.Digest == "" {
		ref.Tag = DefaultTag
	}
	if name == "" {
		return Reference{}, &Error{Input: s, Reason: "repository name is empty"}
	}

	registry, path := DefaultRegistry, name
	if slash := strings.IndexByte(name, '/'); slash >= 0 && isRegistry(name[:slash]) {
		registry, path = name[:slash], name[slash+1:]
		if reason := checkHost(registry); reason != "" {
			return Reference{}, &Error{Input: s, Reason: reason}
		}
		if registry == legacyDefaultRegistry {
			registry = DefaultRegistry
		}
	}
	if reason := checkPath(path); reason != "" {
		return Reference{}, &Error{Input: s, Reason: reason}
	}
	if registry == DefaultRegistry && strings.IndexByte(path, '/') < 0 {
		path = officialPrefix + path
	}
	if len(path) > MaxRepositoryLength {
		return Reference{}, &Error{Input: s, Reason: fmt.Sprintf(
			"repository path is %d characters long, more than the %d allowed", len(path), MaxRepositoryLength)}
	}
	ref.Registry, ref.Repository = registry, path
	return ref, nil
}

// ParseRegistry validates a registry host with an optional port, as written
// before the first "/" of a reference ("registry.example.com",
// "localhost:5000", "[::1]:5000"), and returns it normalised
// ("index.docker.io" becomes "docker.io"). Errors are of type *Error.
func ParseRegistry(s string) (string, error) {
	if s == "" {
		return "", &Error{Input: s, Reason: "registry is empty"}
	}
	if i := indexSpace(s); i >= 0 {
		return "", &Error{Input: s, Reason: fmt.Sprintf("contains whitespace at byte %d", i)}
	}
	if strings.IndexByte(s, '/') >= 0 {
		return "", &Error{Input: s, Reason: "a registry is a host with an optional port and contains no '/'"}
	}
	if reason := checkHost(s); reason != "" {
		return "", &Error{Input: s, Reason: reason}
	}
	if s == legacyDefaultRegistry {
		return DefaultRegistry, nil
	}
	return s, nil
}

// isRegistry reports whether the first component of a name is a registry
// host rather than the first component of a Docker Hub path. Mirrors
// splitDockerDomain in distribution/reference.
func isRegistry(first string) bool {
	if first == "localhost" {
		return true
	}
	for i := 0; i < len(first); i++ {
		switch c := first[i]; {
		case c == '.' || c == ':':
			return true
		case 'A' <= c && c <= 'Z':
			// Path components are lower case, so an upper-case first
			// component can only be a host.
			return true
		}
	}
	return false
}

// indexSpace returns the byte offset of the first white-space character in s, or -1.
func indexSpace(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == ' ' || ('\t' <= c && c <= '\r') {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			return i
		}
		i += n
	}
	return -1
}

// isImageID reports whether s is exactly 64 lowercase hex characters.
func isImageID(s string) bool {
	return len(s) == 64 && allLowerHex(s)
}

// checkDigest returns why d is not a supported digest, or "".
func checkDigest(d string) string {
	if d == "" {
		return "'@' must be followed by a digest such as sha256:<64 hex characters>"
	}
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return fmt.Sprintf("digest %q must be an algorithm and a hex value such as sha256:<64 hex characters>", d)
	}
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha384":
		want = 96
	case "sha512":
		want = 128
	default:
		if !validAlgorithm(alg) {
			return fmt.Sprintf("digest algorithm %q is malformed", alg)
		}
		return fmt.Sprintf("digest algorithm %q is not supported (want sha256, sha384 or sha512)", alg)
	}
	if len(hex) != want || !allLowerHex(hex) {
		return fmt.Sprintf("digest %q must be %s followed by %d lowercase hex characters", d, alg, want)
	}
	return ""
}

// validAlgorithm matches the digest-algorithm production of the grammar:
// components of [A-Za-z][A-Za-z0-9]* joined by one of "+.-_".
func validAlgorithm(alg string) bool {
	start := true
	for i := 0; i < len(alg); i++ {
		c := alg[i]
		switch {
		case isLetter(c):
		case isDigit(c) && !start:
		case (c == '+' || c == '.' || c == '-' || c == '_') && !start:
			start = true
			continue
		default:
			return false
		}
		start = false
	}
	return !start
}

// checkTag returns why t is not a valid tag, or "".
func checkTag(t string) string {
	if t == "" {
		return "tag is empty"
	}
	if len(t) > MaxTagLength {
		return fmt.Sprintf("tag is %d characters long, more than the %d allowed", len(t), MaxTagLength)
	}
	if !isWord(t[0]) {
		return fmt.Sprintf("tag %q must start with a letter, digit or '_'", t)
	}
	for i := 1; i < len(t); i++ {
		if c := t[i]; !isWord(c) && c != '.' && c != '-' {
			return fmt.Sprintf("tag %q contains %s; allowed are letters, digits, '_', '.' and '-'", t, charAt(t, i))
		}
	}
	return ""
}

// checkHost returns why h is not a valid registry host[:port], or "".
func checkHost(h string) string {
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Sprintf("registry host %q has '[' without a closing ']'", h)
		}
		addr := h[1:end]
		for i := 0; i < len(addr); i++ {
			if c := addr[i]; !isHex(c) && c != ':' {
				return fmt.Sprintf("IPv6 address %q in registry host %q contains %s; only hex digits and ':' are allowed (no zones, no embedded IPv4)", addr, h, charAt(addr, i))
			}
		}
		if ip, err := netip.ParseAddr(addr); err != nil || !ip.Is6() {
			return fmt.Sprintf("registry host %q: %q is not a valid IPv6 address", h, addr)
		}
		switch after := h[end+1:]; {
		case after == "":
			return ""
		case after[0] == ':':
			return checkPort(h, after[1:])
		default:
			return fmt.Sprintf("registry host %q has %q after ']'; only \":port\" may follow an IPv6 address", h, after)
		}
	}

	host, port, hasPort := strings.Cut(h, ":")
	if host == "" {
		return fmt.Sprintf("registry host %q has an empty host name", h)
	}
	for comp := range strings.SplitSeq(host, ".") {
		if reason := checkDomainComponent(h, comp); reason != "" {
			return reason
		}
	}
	if hasPort {
		return checkPort(h, port)
	}
	return ""
}

// checkDomainComponent checks one dot-separated label of a host name.
func checkDomainComponent(h, comp string) string {
	if comp == "" {
		return fmt.Sprintf("registry host %q has an empty label (leading, trailing or double '.')", h)
	}
	for i := 0; i < len(comp); i++ {
		if c := comp[i]; !isLetter(c) && !isDigit(c) && c != '-' {
			return fmt.Sprintf("registry host %q contains %s; host names allow letters, digits, '-' and '.'", h, charAt(comp, i))
		}
	}
	if comp[0] == '-' || comp[len(comp)-1] == '-' {
		return fmt.Sprintf("registry host %q has label %q, which must not start or end with '-'", h, comp)
	}
	return ""
}

// checkPort checks the text after the ':' of a registry host.
func checkPort(h, port string) string {
	if port == "" {
		return fmt.Sprintf("registry host %q has an empty port after ':'", h)
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return fmt.Sprintf("port %q of registry host %q is not numeric", port, h)
		}
	}
	return ""
}

// checkPath returns why p is not a valid repository path, or "".
func checkPath(p string) string {
	if p == "" {
		return "repository path is empty"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; 'A' <= c && c <= 'Z' {
			return "repository name must be lowercase"
		}
	}
	for comp := range strings.SplitSeq(p, "/") {
		if comp == "" {
			return fmt.Sprintf("repository path %q has an empty component (leading, trailing or double '/')", p)
		}
		if reason := checkComponent(comp); reason != "" {
			return reason
		}
	}
	return ""
}

// checkComponent checks one path component against
// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*.
func checkComponent(comp string) string {
	i := 0
	for i < len(comp) {
		start := i
		for i < len(comp) && isLowerAlnum(comp[i]) {
			i++
		}
		if i == len(comp) {
			return ""
		}
		c := comp[i]
		if !isSeparator(c) {
			return fmt.Sprintf("repository path component %q contains %s; allowed are lowercase letters, digits, '.', '_' and '-'", comp, charAt(comp, i))
		}
		if i == start {
			// Only possible at the start: later runs begin after a separator
			// that was already followed by an alphanumeric.
			return fmt.Sprintf("repository path component %q must start with a lowercase letter or digit", comp)
		}
		sepStart := i
		for i < len(comp) && isSeparator(comp[i]) {
			i++
		}
		if i == len(comp) {
			return fmt.Sprintf("repository path component %q must end with a lowercase letter or digit", comp)
		}
		if sep := comp[sepStart:i]; !validSeparator(sep) {
			return fmt.Sprintf("repository path component %q has separator %q; allowed are one '.', one or two '_', or any number of '-'", comp, sep)
		}
	}
	return ""
}

// validSeparator reports whether sep is ".", "_", "__" or a run of '-'.
func validSeparator(sep string) bool {
	switch sep {
	case ".", "_", "__":
		return true
	}
	for i := 0; i < len(sep); i++ {
		if sep[i] != '-' {
			return false
		}
	}
	return true
}

// charAt describes the character at byte i of s for an error message,
// quoting it so control and non-ASCII characters stay readable.
func charAt(s string, i int) string {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("the invalid byte 0x%02x", s[i])
	}
	return "the character " + strconv.QuoteRune(r)
}

func isLetter(c byte) bool     { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || isDigit(c) }
func isLowerHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' }
func isHex(c byte) bool        { return isLowerHex(c) || 'A' <= c && c <= 'F' }
func isWord(c byte) bool       { return isLetter(c) || isDigit(c) || c == '_' }
func isSeparator(c byte) bool  { return c == '.' || c == '_' || c == '-' }

func allLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}
