package registry

import (
	"net"
	"strings"
)

// Loopback reports whether host ("name", "name:port", "[::1]:port") is a
// loopback registry: "localhost", an address in 127.0.0.0/8, or ::1. It
// follows containerd's docker.MatchLocalhost: such a registry is tried over
// HTTPS first and falls back to plain HTTP, because only this machine can
// answer there and a local registry (docker-registry serve, kind's
// localhost:5001) rarely has a certificate. Nothing else is implied: not
// private ranges (10/8, 172.16/12, 192.168/16), not "*.localhost", not
// names that resolve to loopback; those need registries[host].insecure.
func Loopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
