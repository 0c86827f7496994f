package reference

import "testing"

func TestNormalizePattern(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"an official image name gets docker.io/library", "nginx", "docker.io/library/nginx"},
		{"an official image with a tag wildcard gets docker.io/library", "nginx:*", "docker.io/library/nginx:*"},
		{"a Docker Hub organisation gets docker.io", "bitnami/*", "docker.io/bitnami/*"},
		{"docker.io with one component gets library", "docker.io/nginx", "docker.io/library/nginx"},
		{"docker.io with a wildcard is left alone", "docker.io/*", "docker.io/*"},
		{"index.docker.io is docker.io", "index.docker.io/library/redis", "docker.io/library/redis"},
		{"index.docker.io with one component gets library", "index.docker.io/redis", "docker.io/library/redis"},
		{"a registry host is kept", "registry.example.com/*", "registry.example.com/*"},
		{"a registry with a port is kept", "localhost:5000/team/*", "localhost:5000/team/*"},
		{"localhost is a registry", "localhost/app", "localhost/app"},
		{"an upper-case first component is a registry, as in Parse", "Foo/*", "Foo/*"},
		{"a leading wildcard is left alone", "*/nginx", "*/nginx"},
		{"a lone wildcard is left alone", "*", "*"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NormalizePattern(c.in); got != c.want {
				t.Errorf("NormalizePattern(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestNormalizePatternLeavesLeadingWildcardsAlone(t *testing.T) {
	for _, p := range []string{"*:latest-unsafe", "?ginx", "*"} {
		if got := NormalizePattern(p); got != p {
			t.Errorf("NormalizePattern(%q) = %q, want it unchanged", p, got)
		}
	}
}
