package policy

import (
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

func mustParse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheck(t *testing.T) {
	lists, err := New(config.Policies{
		AllowList: []string{"registry.example.com/*", "docker.io/library/nginx", "ghcr.io/org/app:v?"},
		DenyList:  []string{"docker.io/unknown/*", "registry.example.com/docker.io/bad/*", "*:debug"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		original string
		swapped  string
		inTarget bool
		denied   bool
		rule     string
	}{
		{"a repository pattern covers every tag", "nginx:1.27", "", false, false, `policies.allowList[1] "docker.io/library/nginx"`},
		{"a repository pattern covers digests too", "nginx@sha256:" + strings.Repeat("a", 64), "", false, false, `policies.allowList[1] "docker.io/library/nginx"`},
		{"a host wildcard covers everything under the host", "registry.example.com/team/app:1", "", false, false, `policies.allowList[0] "registry.example.com/*"`},
		{"a host wildcard does not cover a longer host", "registry.example.com.evil.io/x:1", "", false, true, "policies.allowList"},
		{"? matches exactly one character", "ghcr.io/org/app:v2", "", false, false, `policies.allowList[2] "ghcr.io/org/app:v?"`},
		{"? does not match two characters", "ghcr.io/org/app:v10", "", false, true, "policies.allowList"},
		{"deny matches the original", "docker.io/unknown/x:1", "registry.example.com/docker.io/unknown/x:1", false, true, `policies.denyList[0] "docker.io/unknown/*"`},
		{"deny matches the swapped reference", "bad/x:1", "registry.example.com/docker.io/bad/x:1", false, true, `policies.denyList[1] "registry.example.com/docker.io/bad/*"`},
		{"deny wins over allow", "nginx:debug", "", false, true, `policies.denyList[2] "*:debug"`},
		{"a swapped image passes the allowList", "quay.io/a/b:1", "registry.example.com/quay.io/a/b:1", false, false, `policies.allowList[0] "registry.example.com/*"`},
		{"an image already in the target passes", "registry.example.com/quay.io/a/b:1", "", true, false, `policies.allowList[0] "registry.example.com/*"`},
		{"an image neither swapped nor allowed is denied", "quay.io/a/b:1", "", false, true, "policies.allowList"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var swapped *reference.Reference
			if c.swapped != "" {
				s := mustParse(t, c.swapped)
				swapped = &s
			}
			v := lists.Check(mustParse(t, c.original), swapped, c.inTarget)
			if v.Denied != c.denied || v.Rule != c.rule {
				t.Fatalf("Check(%q, %q) = denied %v by %q (%s); want denied %v by %q", c.original, c.swapped, v.Denied, v.Rule, v.Reason, c.denied, c.rule)
			}
			if v.Reason == "" {
				t.Error("verdict has no reason")
			}
		})
	}
}

func TestCheckWithoutAllowListAllowsWhatIsNotDenied(t *testing.T) {
	lists, err := New(config.Policies{DenyList: []string{"docker.io/unknown/*"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := lists.Check(mustParse(t, "quay.io/a/b:1"), nil, false); v.Denied {
		t.Errorf("quay.io/a/b:1 denied (%s) with no allowList", v.Reason)
	}
}

func TestNewNamesTheBadPattern(t *testing.T) {
	_, err := New(config.Policies{DenyList: []string{"ok/*", "bad pattern"}})
	if err == nil || !strings.Contains(err.Error(), "policies.denyList[1]") {
		t.Fatalf("New: %v, want an error naming policies.denyList[1]", err)
	}
}

func TestSources(t *testing.T) {
	lists, err := New(config.Policies{AllowList: []string{"registry.example.com/*"}},
		Source{Path: "ClusterImagePolicy/base spec.policies", AllowList: []string{"ghcr.io/org/*"}, DenyList: []string{"*:debug"}},
		Source{Path: "ImagePolicy/a/p spec", AllowList: []string{"docker.io/library/*", "ghcr.io/org/app"}, Narrows: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	swappedNginx := mustParse(t, "registry.example.com/docker.io/library/nginx:1")
	swappedRedis := mustParse(t, "registry.example.com/docker.io/bitnami/redis:7")
	cases := []struct {
		name     string
		original string
		swapped  *reference.Reference
		denied   bool
		rule     string
	}{
		{"a source's deny entry is named by its source", "nginx:debug", nil, true, `ClusterImagePolicy/base spec.policies.denyList[0] "*:debug"`},
		{"a source's allow entry extends the allowList", "ghcr.io/org/app:1", nil, false, `ClusterImagePolicy/base spec.policies.allowList[0] "ghcr.io/org/*"`},
		{"a narrowing list denies what the allowList passes", "ghcr.io/org/other:1", nil, true, "ImagePolicy/a/p spec.allowList"},
		{"being swapped does not pass a narrowing list", "docker.io/bitnami/redis:7", &swappedRedis, true, "ImagePolicy/a/p spec.allowList"},
		{"a swapped image in the narrowing list passes", "nginx:1", &swappedNginx, false, `policies.allowList[0] "registry.example.com/*"`},
		{"a narrowing list never allows what the allowList denies", "docker.io/library/nginx:1", nil, true, "policies.allowList"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := lists.Check(mustParse(t, c.original), c.swapped, false)
			if v.Denied != c.denied || v.Rule != c.rule {
				t.Fatalf("denied %v by %q (%s); want denied %v by %q", v.Denied, v.Rule, v.Reason, c.denied, c.rule)
			}
		})
	}
	if got := lists.AllowList(); len(got) != 2 || got[1] != "ghcr.io/org/*" {
		t.Errorf("AllowList() = %v; want the configuration's and the extending source's", got)
	}
}
