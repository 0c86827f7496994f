package reference

import (
	"net/netip"
	"strings"
)

// PathSafeRegistry turns a registry host, as found in Reference.Registry,
// into a single repository path component, so that a mirror can keep the
// source registry in its target path without two sources ever meeting:
//
//	"docker.io"        -> "docker.io"
//	"Quay.IO"          -> "quay.io"
//	"localhost:5000"   -> "localhost_5000"
//	"127.0.0.1:5000"   -> "127.0.0.1_5000"
//	"[::1]"            -> "0000_0000_0000_0000_0000_0000_0000_0001"
//	"[::1]:5000"       -> "0000_0000_0000_0000_0000_0000_0000_0001_5000"
//
// Why it is injective: host names cannot contain '_', so a host name maps to
// itself (no '_') or, with a port, to "host_port" (exactly one '_'). An IPv6
// address is written as all eight groups, four lowercase hex digits each,
// joined by '_' (seven '_', eight with a port), so each address has one
// spelling and cannot be mistaken for a host name with a port. Host names
// are lowercased because DNS names are case-insensitive: "Quay.IO" and
// "quay.io" are the same registry and rightly share a mirror path.
//
// The result matches the path-component grammar
// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)* for every host Parse accepts.
func PathSafeRegistry(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			if ip, err := netip.ParseAddr(host[1:end]); err == nil && ip.Is6() {
				return expandIPv6(ip, host[end+1:])
			}
		}
	}
	if !needsRewrite(host) {
		return host
	}
	b := []byte(host)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case c == ':':
			b[i] = '_'
		}
	}
	return string(b)
}

// needsRewrite reports whether host has an upper-case letter or a port.
func needsRewrite(host string) bool {
	for i := 0; i < len(host); i++ {
		if c := host[i]; c == ':' || 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// expandIPv6 writes ip as eight '_'-joined groups of four hex digits,
// followed by "_port" when after is ":port".
func expandIPv6(ip netip.Addr, after string) string {
	const hexDigits = "0123456789abcdef"
	a := ip.As16()
	port := strings.TrimPrefix(after, ":")
	b := make([]byte, 0, 8*5+len(port))
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			b = append(b, '_')
		}
		b = append(b, hexDigits[a[i]>>4], hexDigits[a[i]&0xf], hexDigits[a[i+1]>>4], hexDigits[a[i+1]&0xf])
	}
	if port != "" {
		b = append(b, '_')
		b = append(b, port...)
	}
	return string(b)
}

// RegistryFromPathSafe is the inverse of PathSafeRegistry: it returns the
// registry host whose path-safe form is s, and false when no host has it.
func RegistryFromPathSafe(s string) (string, bool) {
	var host string
	switch parts := strings.Split(s, "_"); len(parts) {
	case 1:
		host = s
	case 2:
		host = parts[0] + ":" + parts[1]
	case 8, 9:
		addr, err := netip.ParseAddr(strings.Join(parts[:8], ":"))
		if err != nil || !addr.Is6() {
			return "", false
		}
		host = "[" + addr.String() + "]"
		if len(parts) == 9 {
			host += ":" + parts[8]
		}
	default:
		return "", false
	}
	if host == "" || checkHost(host) != "" || PathSafeRegistry(host) != s {
		return "", false
	}
	return host, true
}
