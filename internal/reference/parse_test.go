package reference

import (
	"errors"
	"strings"
	"testing"
)

const (
	hex64  = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
	d256   = "sha256:" + hex64
	d384   = "sha384:" + hex64 + "0123456789abcdef0123456789abcdef"
	d512   = "sha512:" + hex64 + hex64
	longID = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
)

// goldenCase is one row of the golden table: either the normalised parts of
// a valid reference, or a substring of the error for an invalid one.
type goldenCase struct {
	name       string
	in         string
	want       string // normalised String()
	registry   string
	repository string
	tag        string
	digest     string
	err        string // substring of the error; empty for valid input
}

// goldenCases are drawn from distribution/reference's reference_test.go and
// normalize_test.go and from image names Kubernetes users meet.
var goldenCases = []goldenCase{
	// Docker Hub short names and their equivalents.
	{name: "docker hub short name gets library/ and latest", in: "nginx", want: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest"},
	{name: "short name keeps its tag", in: "nginx:1.27", want: "docker.io/library/nginx:1.27", registry: "docker.io", repository: "library/nginx", tag: "1.27"},
	{name: "short name keeps a dashed tag", in: "nginx:1.27-alpine", want: "docker.io/library/nginx:1.27-alpine", registry: "docker.io", repository: "library/nginx", tag: "1.27-alpine"},
	{name: "library/ name is docker hub", in: "library/nginx", want: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest"},
	{name: "docker.io without library/ gets library/", in: "docker.io/nginx", want: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest"},
	{name: "fully qualified docker hub name is unchanged", in: "docker.io/library/nginx:latest", want: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest"},
	{name: "index.docker.io is docker.io", in: "index.docker.io/nginx", want: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest"},
	{name: "index.docker.io with library/ is docker.io", in: "index.docker.io/library/busybox:1.36", want: "docker.io/library/busybox:1.36", registry: "docker.io", repository: "library/busybox", tag: "1.36"},
	{name: "docker hub user image", in: "bitnami/redis:7.2", want: "docker.io/bitnami/redis:7.2", registry: "docker.io", repository: "bitnami/redis", tag: "7.2"},
	{name: "docker hub user image with docker.io", in: "docker.io/bitnami/redis", want: "docker.io/bitnami/redis:latest", registry: "docker.io", repository: "bitnami/redis", tag: "latest"},
	{name: "nested library path is not shortened", in: "library/foo/bar", want: "docker.io/library/foo/bar:latest", registry: "docker.io", repository: "library/foo/bar", tag: "latest"},
	{name: "three component docker hub path", in: "store/foo/bar", want: "docker.io/store/foo/bar:latest", registry: "docker.io", repository: "store/foo/bar", tag: "latest"},
	{name: "first component with underscore is a docker hub path", in: "test_com/foo", want: "docker.io/test_com/foo:latest", registry: "docker.io", repository: "test_com/foo", tag: "latest"},
	{name: "first component with a port-less name is a docker hub path", in: "docker/migrator", want: "docker.io/docker/migrator:latest", registry: "docker.io", repository: "docker/migrator", tag: "latest"},

	// Other public registries.
	{name: "gcr.io image", in: "gcr.io/google-containers/pause:3.9", want: "gcr.io/google-containers/pause:3.9", registry: "gcr.io", repository: "google-containers/pause", tag: "3.9"},
	{name: "regional gcr.io image", in: "eu.gcr.io/my-project/app:v2", want: "eu.gcr.io/my-project/app:v2", registry: "eu.gcr.io", repository: "my-project/app", tag: "v2"},
	{name: "registry.k8s.io image has no library/", in: "registry.k8s.io/pause:3.10", want: "registry.k8s.io/pause:3.10", registry: "registry.k8s.io", repository: "pause", tag: "3.10"},
	{name: "ghcr.io image", in: "ghcr.io/fluxcd/source-controller:v1.4.1", want: "ghcr.io/fluxcd/source-controller:v1.4.1", registry: "ghcr.io", repository: "fluxcd/source-controller", tag: "v1.4.1"},
	{name: "quay.io image", in: "quay.io/prometheus/node-exporter:v1.8.2", want: "quay.io/prometheus/node-exporter:v1.8.2", registry: "quay.io", repository: "prometheus/node-exporter", tag: "v1.8.2"},
	{name: "ECR private registry host", in: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", want: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest", registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", repository: "app", tag: "latest"},
	{name: "ECR image with dotted tag", in: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2024.06.01", want: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2024.06.01", registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", repository: "team/app", tag: "2024.06.01"},
	{name: "ECR public gallery deep path", in: "public.ecr.aws/eks-distro/kubernetes/pause:3.9", want: "public.ecr.aws/eks-distro/kubernetes/pause:3.9", registry: "public.ecr.aws", repository: "eks-distro/kubernetes/pause", tag: "3.9"},
	{name: "artifact registry deep path", in: "europe-west1-docker.pkg.dev/my-project/my-repo/app:v1", want: "europe-west1-docker.pkg.dev/my-project/my-repo/app:v1", registry: "europe-west1-docker.pkg.dev", repository: "my-project/my-repo/app", tag: "v1"},
	{name: "mcr image", in: "mcr.microsoft.com/dotnet/aspnet:8.0", want: "mcr.microsoft.com/dotnet/aspnet:8.0", registry: "mcr.microsoft.com", repository: "dotnet/aspnet", tag: "8.0"},
	{name: "harbor deep path", in: "harbor.example.com/project/team/sub/app:1", want: "harbor.example.com/project/team/sub/app:1", registry: "harbor.example.com", repository: "project/team/sub/app", tag: "1"},
	{name: "subdomain with dash and deep path", in: "sub-dom1.foo.com/bar/baz/quux:some-long-tag", want: "sub-dom1.foo.com/bar/baz/quux:some-long-tag", registry: "sub-dom1.foo.com", repository: "bar/baz/quux", tag: "some-long-tag"},
	{name: "dots in path and tag", in: "b.gcr.io/test.example.com/my-app:test.example.com", want: "b.gcr.io/test.example.com/my-app:test.example.com", registry: "b.gcr.io", repository: "test.example.com/my-app", tag: "test.example.com"},
	{name: "punycode host with port", in: "xn--n3h.com:18080/foo", want: "xn--n3h.com:18080/foo:latest", registry: "xn--n3h.com:18080", repository: "foo", tag: "latest"},
	{name: "mirror target path is a valid reference", in: "registry.example.com/docker.io/library/nginx:1.27", want: "registry.example.com/docker.io/library/nginx:1.27", registry: "registry.example.com", repository: "docker.io/library/nginx", tag: "1.27"},
	{name: "mirror target path with a path-safe port", in: "registry.example.com/localhost_5000/app:dev", want: "registry.example.com/localhost_5000/app:dev", registry: "registry.example.com", repository: "localhost_5000/app", tag: "dev"},

	// localhost, ports and IP addresses.
	{name: "localhost is a registry", in: "localhost/app", want: "localhost/app:latest", registry: "localhost", repository: "app", tag: "latest"},
	{name: "localhost with port", in: "localhost:5000/app:dev", want: "localhost:5000/app:dev", registry: "localhost:5000", repository: "app", tag: "dev"},
	{name: "bare localhost is a docker hub name", in: "localhost", want: "docker.io/library/localhost:latest", registry: "docker.io", repository: "library/localhost", tag: "latest"},
	{name: "bare localhost:5000 is a docker hub name with tag 5000", in: "localhost:5000", want: "docker.io/library/localhost:5000", registry: "docker.io", repository: "library/localhost", tag: "5000"},
	{name: "IPv4 registry with port", in: "127.0.0.1:5000/team/app:1.0", want: "127.0.0.1:5000/team/app:1.0", registry: "127.0.0.1:5000", repository: "team/app", tag: "1.0"},
	{name: "IPv4 registry without port", in: "192.168.1.1/repo", want: "192.168.1.1/repo:latest", registry: "192.168.1.1", repository: "repo", tag: "latest"},
	{name: "bare IPv4 is a docker hub name", in: "192.168.1.1", want: "docker.io/library/192.168.1.1:latest", registry: "docker.io", repository: "library/192.168.1.1", tag: "latest"},
	{name: "single-label host with port is a registry", in: "test:5000/repo", want: "test:5000/repo:latest", registry: "test:5000", repository: "repo", tag: "latest"},
	{name: "dotted single name with tag is a docker hub name", in: "test.com:tag", want: "docker.io/library/test.com:tag", registry: "docker.io", repository: "library/test.com", tag: "tag"},
	{name: "underscore dotted name with numeric tag", in: "foo_bar.com:8080", want: "docker.io/library/foo_bar.com:8080", registry: "docker.io", repository: "library/foo_bar.com", tag: "8080"},
	{name: "dotted second component with numeric tag", in: "foo/foo_bar.com:8080", want: "docker.io/foo/foo_bar.com:8080", registry: "docker.io", repository: "foo/foo_bar.com", tag: "8080"},
	{name: "explicit port on a public host is kept", in: "example.com:443/app", want: "example.com:443/app:latest", registry: "example.com:443", repository: "app", tag: "latest"},
	{name: "index.docker.io with a port is not rewritten", in: "index.docker.io:443/foo", want: "index.docker.io:443/foo:latest", registry: "index.docker.io:443", repository: "foo", tag: "latest"},
	{name: "IPv6 loopback with port", in: "[::1]:5000/app", want: "[::1]:5000/app:latest", registry: "[::1]:5000", repository: "app", tag: "latest"},
	{name: "IPv6 without port", in: "[2001:db8::1]/app", want: "[2001:db8::1]/app:latest", registry: "[2001:db8::1]", repository: "app", tag: "latest"},
	{name: "uncompressed IPv6 with tag", in: "[2001:db8:1:2:3:4:5:6]/repo:tag", want: "[2001:db8:1:2:3:4:5:6]/repo:tag", registry: "[2001:db8:1:2:3:4:5:6]", repository: "repo", tag: "tag"},
	{name: "IPv6 with port, tag and digest", in: "[2001:db8::1]:5000/repo:tag@" + d256, want: "[2001:db8::1]:5000/repo:tag@" + d256, registry: "[2001:db8::1]:5000", repository: "repo", tag: "tag", digest: d256},
	{name: "IPv6 trailing double colon", in: "[2001:db8::]:5000/repo", want: "[2001:db8::]:5000/repo:latest", registry: "[2001:db8::]:5000", repository: "repo", tag: "latest"},
	{name: "upper-case IPv6 is kept as written", in: "[FC00::1]:5000/docker", want: "[FC00::1]:5000/docker:latest", registry: "[FC00::1]:5000", repository: "docker", tag: "latest"},

	// Tags and digests.
	{name: "digest only has no tag", in: "nginx@" + d256, want: "docker.io/library/nginx@" + d256, registry: "docker.io", repository: "library/nginx", digest: d256},
	{name: "tag and digest are both kept", in: "busybox:latest@" + d256, want: "docker.io/library/busybox:latest@" + d256, registry: "docker.io", repository: "library/busybox", tag: "latest", digest: d256},
	{name: "qualified tag and digest are both kept", in: "registry.k8s.io/ingress-nginx/controller:v1.11.2@" + d256, want: "registry.k8s.io/ingress-nginx/controller:v1.11.2@" + d256, registry: "registry.k8s.io", repository: "ingress-nginx/controller", tag: "v1.11.2", digest: d256},
	{name: "localhost port with digest only", in: "localhost:5000/app@" + d256, want: "localhost:5000/app@" + d256, registry: "localhost:5000", repository: "app", digest: d256},
	{name: "sha512 digest with punycode tag", in: "xn--7o8h.com/myimage:xn--7o8h.com@" + d512, want: "xn--7o8h.com/myimage:xn--7o8h.com@" + d512, registry: "xn--7o8h.com", repository: "myimage", tag: "xn--7o8h.com", digest: d512},
	{name: "sha384 digest", in: "example.com/app@" + d384, want: "example.com/app@" + d384, registry: "example.com", repository: "app", digest: d384},
	{name: "upper-case tag is allowed", in: "nginx:Latest", want: "docker.io/library/nginx:Latest", registry: "docker.io", repository: "library/nginx", tag: "Latest"},
	{name: "tag may start with underscore", in: "app:_private", want: "docker.io/library/app:_private", registry: "docker.io", repository: "library/app", tag: "_private"},
	{name: "tag of exactly 128 characters", in: "app:" + strings.Repeat("t", 128), want: "docker.io/library/app:" + strings.Repeat("t", 128), registry: "docker.io", repository: "library/app", tag: strings.Repeat("t", 128)},

	// Path component grammar.
	{name: "single character name", in: "a", want: "docker.io/library/a:latest", registry: "docker.io", repository: "library/a", tag: "latest"},
	{name: "double underscore separator", in: "dock__er/docker", want: "docker.io/dock__er/docker:latest", registry: "docker.io", repository: "dock__er/docker", tag: "latest"},
	{name: "run of dashes separator", in: "docker---rules/docker", want: "docker.io/docker---rules/docker:latest", registry: "docker.io", repository: "docker---rules/docker", tag: "latest"},
	{name: "64 hex after a registry is a name", in: "docker.io/" + longID, want: "docker.io/library/" + longID + ":latest", registry: "docker.io", repository: "library/" + longID, tag: "latest"},
	{name: "63 hex is a name", in: longID[:63], want: "docker.io/library/" + longID[:63] + ":latest", registry: "docker.io", repository: "library/" + longID[:63], tag: "latest"},
	{name: "path of exactly 255 characters", in: strings.Repeat("a/", 127) + "a:tag", want: "docker.io/" + strings.Repeat("a/", 127) + "a:tag", registry: "docker.io", repository: strings.Repeat("a/", 127) + "a", tag: "tag"},

	// Upper case in the first component makes it a host (distribution/reference ≥ v0.5.0).
	{name: "upper-case domain is kept as written", in: "EXAMPLE.COM/app", want: "EXAMPLE.COM/app:latest", registry: "EXAMPLE.COM", repository: "app", tag: "latest"},
	{name: "Docker.io is not docker.io and gets no library/", in: "Docker.io/foo", want: "Docker.io/foo:latest", registry: "Docker.io", repository: "foo", tag: "latest"},
	{name: "upper-case first component is a registry", in: "Foo/bar", want: "Foo/bar:latest", registry: "Foo", repository: "bar", tag: "latest"},

	// Errors.
	{name: "empty string", in: "", err: "reference is empty"},
	{name: "upper case single name", in: "Nginx", err: "repository name must be lowercase"},
	{name: "upper case in a docker hub path", in: "docker/Docker", err: "repository name must be lowercase"},
	{name: "upper case in a path after a registry", in: "test:5000/Uppercase/lowercase:tag", err: "repository name must be lowercase"},
	{name: "upper case with tag", in: "Uppercase:tag", err: "repository name must be lowercase"},
	{name: "empty tag", in: "nginx:", err: "tag is empty"},
	{name: "empty tag before digest", in: "nginx:@" + d256, err: "tag is empty"},
	{name: "tag too long", in: "nginx:" + strings.Repeat("t", 129), err: "tag is 129 characters long, more than the 128 allowed"},
	{name: "tag starting with dash", in: "nginx:-bad", err: `tag "-bad" must start with a letter, digit or '_'`},
	{name: "tag with plus", in: "nginx:1.0+build", err: `tag "1.0+build" contains the character '+'`},
	{name: "tag with second colon", in: "nginx:1:2", err: `tag "1:2" contains the character ':'`},
	{name: "short sha256 digest", in: "nginx@sha256:abc", err: `digest "sha256:abc" must be sha256 followed by 64 lowercase hex characters`},
	{name: "upper-case sha256 hex", in: "nginx@sha256:" + strings.ToUpper(hex64), err: "must be sha256 followed by 64 lowercase hex characters"},
	{name: "sha512 with 64 hex", in: "nginx@sha512:" + hex64, err: "must be sha512 followed by 128 lowercase hex characters"},
	{name: "unsupported digest algorithm", in: "validname@invaliddigest:" + hex64, err: `digest algorithm "invaliddigest" is not supported`},
	{name: "malformed digest algorithm", in: "nginx@1sha:" + hex64, err: `digest algorithm "1sha" is malformed`},
	{name: "digest without algorithm", in: "nginx@" + hex64, err: "must be an algorithm and a hex value"},
	{name: "at sign without digest", in: "nginx@", err: "'@' must be followed by a digest"},
	{name: "second at sign", in: "nginx@" + d256 + "@" + d256, err: "must be sha256 followed by 64 lowercase hex characters"},
	{name: "only a tag", in: ":justtag", err: "repository name is empty"},
	{name: "only a digest", in: "@" + d256, err: "repository name is empty"},
	{name: "bare image ID", in: longID, err: "64-character hexadecimal string is an image ID"},
	{name: "double slash", in: "a//b", err: `repository path "a//b" has an empty component`},
	{name: "triple slash", in: "docker///docker", err: "has an empty component"},
	{name: "trailing slash", in: "docker/", err: "has an empty component"},
	{name: "registry without path", in: "docker.io/", err: "repository path is empty"},
	{name: "leading dash", in: "-docker", err: `repository path component "-docker" must start with a lowercase letter or digit`},
	{name: "trailing dash", in: "docker-/docker", err: `repository path component "docker-" must end with a lowercase letter or digit`},
	{name: "underscores then dash", in: "a__-b", err: `separator "__-"`},
	{name: "double period", in: "docker/dock..er", err: `separator ".."`},
	{name: "underscore then period", in: "docker/dock_.er", err: `separator "_."`},
	{name: "triple underscore", in: "a___b", err: `separator "___"`},
	{name: "only underscores", in: "____/____", err: "must start with a lowercase letter or digit"},
	{name: "shell characters in path", in: "aa/asdf$$^/aa", err: "contains the character '$'"},
	{name: "non-ASCII in path", in: "café/app", err: "contains the character 'é'"},
	{name: "path too long", in: strings.Repeat("a/", 128) + "a:tag", err: "repository path is 257 characters long, more than the 255 allowed"},
	{name: "short name too long after library/", in: strings.Repeat("a", 250), err: "repository path is 258 characters long"},
	{name: "space inside", in: "nginx :latest", err: "contains whitespace at byte 5"},
	{name: "leading space", in: " nginx", err: "contains whitespace at byte 0"},
	{name: "trailing newline", in: "nginx\n", err: "contains whitespace at byte 5"},
	{name: "non-breaking space", in: "nginx\u00a0", err: "contains whitespace at byte 5"},
	{name: "non-numeric port", in: "localhost:50a0/app", err: `port "50a0" of registry host "localhost:50a0" is not numeric`},
	{name: "IPv6 without brackets", in: "fc00::1:5000/debian", err: "is not numeric"},
	{name: "empty port", in: "example.com:/app", err: `registry host "example.com:" has an empty port`},
	{name: "URL scheme", in: "https://github.com/docker/docker", err: "empty port"},
	{name: "host label with leading dash", in: "-docker.io/docker/docker", err: `label "-docker", which must not start or end with '-'`},
	{name: "host with empty label", in: "ex..ample.com/app", err: "has an empty label"},
	{name: "host with underscore", in: "a.b_c/foo", err: `registry host "a.b_c" contains the character '_'`},
	{name: "unclosed IPv6 bracket", in: "[::1/app", err: "has '[' without a closing ']'"},
	{name: "IPv6 zone", in: "[fe80::1%eth0]:5000/repo", err: "contains the character '%'"},
	{name: "IPv6 with embedded IPv4", in: "[2001:db8:3:4::192.0.2.33]:5000/debian", err: "contains the character '.'"},
	{name: "IPv6 with text after bracket", in: "[::1]x:5000/app", err: `has "x:5000" after ']'`},
	{name: "IPv6 with too few groups", in: "[1:2:3]/app", err: `"1:2:3" is not a valid IPv6 address`},
	{name: "IPv6 host without path", in: "[2001:db8::1]", err: "must be followed by '/' and a repository path"},
	{name: "IPv6 host and port without path", in: "[2001:db8::1]:5000", err: "must be followed by '/' and a repository path"},
}

func TestParseGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error containing %q", tc.in, got, tc.err)
				}
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("Parse(%q) error is %T, want *Error", tc.in, err)
				}
				if perr.Input != tc.in {
					t.Errorf("Parse(%q) error Input = %q", tc.in, perr.Input)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Parse(%q) error = %q, want it to contain %q", tc.in, err, tc.err)
				}
				if got != (Reference{}) {
					t.Errorf("Parse(%q) returned %+v with its error, want the zero Reference", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tc.in, err)
			}
			want := Reference{Registry: tc.registry, Repository: tc.repository, Tag: tc.tag, Digest: tc.digest}
			if got != want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, want)
			}
			if s := got.String(); s != tc.want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.in, s, tc.want)
			}
			if n := got.Name(); n != tc.registry+"/"+tc.repository {
				t.Errorf("Parse(%q).Name() = %q, want %q", tc.in, n, tc.registry+"/"+tc.repository)
			}
		})
	}
}

func TestGoldenTableIsLargeEnough(t *testing.T) {
	valid, invalid := 0, 0
	for _, tc := range goldenCases {
		if tc.err == "" {
			valid++
		} else {
			invalid++
		}
	}
	if valid+invalid < 60 || valid < 30 || invalid < 30 {
		t.Errorf("golden table has %d valid and %d invalid cases; keep at least 30 of each", valid, invalid)
	}
}

func TestErrorMessageNamesInputAndReason(t *testing.T) {
	_, err := Parse("Nginx")
	const want = `invalid image reference "Nginx": repository name must be lowercase`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse(%q) error = %v, want %q", "Nginx", err, want)
	}
}

func TestParseRegistry(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  string
	}{
		{name: "plain host", in: "registry.example.com", want: "registry.example.com"},
		{name: "host with port", in: "localhost:5000", want: "localhost:5000"},
		{name: "IPv6 with port", in: "[::1]:5000", want: "[::1]:5000"},
		{name: "legacy docker hub host is docker.io", in: "index.docker.io", want: "docker.io"},
		{name: "single label host", in: "localhost", want: "localhost"},
		{name: "empty", in: "", err: "registry is empty"},
		{name: "with a path", in: "registry.example.com/mirror", err: "contains no '/'"},
		{name: "with whitespace", in: "registry .example.com", err: "contains whitespace"},
		{name: "bad port", in: "registry.example.com:http", err: "is not numeric"},
		{name: "underscore", in: "my_registry.local", err: "contains the character '_'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRegistry(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRegistry(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRegistry(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	inputs := []struct{ name, in string }{
		{"short name", "nginx"},
		{"docker hub with tag", "docker.io/library/nginx:1.27"},
		{"ECR with tag", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2024.06.01"},
		{"tag and digest", "registry.k8s.io/ingress-nginx/controller:v1.11.2@" + d256},
		{"IPv6 with port", "[2001:db8::1]:5000/repo:tag"},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(in.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
