package reference

import "strings"

// NormalizePattern applies reference normalisation to a wildcard pattern so
// that users can write patterns the way they write images: "nginx" means
// "docker.io/library/nginx", "bitnami/*" means "docker.io/bitnami/*" and
// "index.docker.io/x" means "docker.io/library/x". A pattern whose first
// component holds a wildcard ("*/nginx", "*:debug") is left as written.
func NormalizePattern(p string) string {
	first, rest, hasSlash := strings.Cut(p, "/")
	if !hasSlash {
		if strings.HasPrefix(p, "*") || strings.HasPrefix(p, "?") {
			return p
		}
		return DefaultRegistry + "/library/" + p
	}
	if strings.ContainsAny(first, "*?") {
		return p
	}
	if !isRegistry(first) {
		return DefaultRegistry + "/" + p
	}
	if first != DefaultRegistry && first != "index.docker.io" {
		return p
	}
	// Docker Hub: one path component without a wildcard is an official image.
	if !strings.ContainsAny(rest, "/*?") {
		rest = "library/" + rest
	}
	return DefaultRegistry + "/" + rest
}
