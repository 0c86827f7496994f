package reference

import (
	"reflect"
	"strings"
	"testing"
)

func TestSpellings(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name, in string
		want     []string
	}{
		{"a tag gives the tagged and the bare name", "quay.io/a/b:1", []string{"quay.io/a/b:1", "quay.io/a/b"}},
		{"a tag and a digest give every form", "quay.io/a/b:1@" + d, []string{"quay.io/a/b:1@" + d, "quay.io/a/b:1", "quay.io/a/b@" + d, "quay.io/a/b"}},
		{"a digest alone gives the pinned and the bare name", "quay.io/a/b@" + d, []string{"quay.io/a/b@" + d, "quay.io/a/b"}},
		{"an upper-case host is also spelled in lower case", "Quay.IO/a/b:1", []string{"Quay.IO/a/b:1", "Quay.IO/a/b", "quay.io/a/b:1", "quay.io/a/b"}},
		{"port 443 is also spelled without it", "ghcr.io:443/a/b:1", []string{"ghcr.io:443/a/b:1", "ghcr.io:443/a/b", "ghcr.io/a/b:1", "ghcr.io/a/b"}},
		{"other ports are kept", "ghcr.io:5000/a/b:1", []string{"ghcr.io:5000/a/b:1", "ghcr.io:5000/a/b"}},
		{"Docker Hub aliases are docker.io", "registry-1.docker.io/library/nginx:1", []string{"registry-1.docker.io/library/nginx:1", "registry-1.docker.io/library/nginx", "docker.io/library/nginx:1", "docker.io/library/nginx"}},
		{"a one-component Docker Hub alias name is an official image", "index.docker.io:443/nginx:1", []string{"index.docker.io:443/nginx:1", "index.docker.io:443/nginx", "docker.io/nginx:1", "docker.io/nginx", "docker.io/library/nginx:1", "docker.io/library/nginx"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref, err := Parse(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := Spellings(ref); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Spellings(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestCanonicalPattern(t *testing.T) {
	for in, want := range map[string]string{
		"nginx:1.19":                     "docker.io/library/nginx:1.19",
		"index.docker.io/nginx":          "docker.io/library/nginx",
		"registry-1.docker.io/library/*": "docker.io/library/*",
		"GHCR.io:443/team/*":             "ghcr.io/team/*",
		"*:latest":                       "*:latest",
		"quay.io:8443/x":                 "quay.io:8443/x",
		"[0:0::1]:5000/x":                "[::1]:5000/x",
	} {
		if got := CanonicalPattern(in); got != want {
			t.Errorf("CanonicalPattern(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCanonicalRegistry: the canonical spelling of a valid host is a valid
// host, and canonical already.
func FuzzCanonicalRegistry(f *testing.F) {
	for _, h := range []string{"docker.io", "Quay.IO:443", "[::1]:443", "localhost:0443", "registry-1.docker.io"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if _, err := ParseRegistry(h); err != nil {
			return
		}
		c := CanonicalRegistry(h)
		if reason := checkHost(c); reason != "" {
			t.Fatalf("CanonicalRegistry(%q) = %q, not a valid host: %s", h, c, reason)
		}
		if again := CanonicalRegistry(c); again != c {
			t.Fatalf("CanonicalRegistry is not idempotent: %q -> %q -> %q", h, c, again)
		}
	})
}
