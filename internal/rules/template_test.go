package rules

import (
	"strings"
	"testing"

	"github.com/image-swapper/image-swapper/internal/reference"
)

func TestTemplateRender(t *testing.T) {
	cases := []struct {
		name, template, image, suffix, want, prefix string
	}{
		{"the default keeps the source registry", DefaultTarget, "nginx:1.27", "", "registry.example.com/docker.io/library/nginx", "registry.example.com/"},
		{"a port becomes host_port", DefaultTarget, "localhost:5000/team/app", "", "registry.example.com/localhost_5000/team/app", "registry.example.com/"},
		{"an IPv6 host becomes its expanded groups", DefaultTarget, "[::1]:5000/app", "", "registry.example.com/0000_0000_0000_0000_0000_0000_0000_0001_5000/app", "registry.example.com/"},
		{"image is registry and repository", "{target}/m/{image}", "quay.io/a/b", "", "registry.example.com/m/quay.io/a/b", "registry.example.com/m/"},
		{"suffix is spliced in", "mirror.example.com/team-a{suffix}", "registry.example.com/team1/x", "/x", "mirror.example.com/team-a/x", "mirror.example.com/team-a"},
		{"index.docker.io targets are normalised", "index.docker.io/myorg/{repository}", "quay.io/a/b", "", "docker.io/myorg/a/b", "docker.io/myorg/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(c.template, "registry.example.com")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := reference.Parse(c.image)
			if err != nil {
				t.Fatal(err)
			}
			if got := tmpl.Render(ref, c.suffix); got != c.want {
				t.Errorf("Render = %q, want %q", got, c.want)
			}
			if got := tmpl.Prefix(); got != c.prefix {
				t.Errorf("Prefix = %q, want %q", got, c.prefix)
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	cases := []struct{ name, template, target, want string }{
		{"an unclosed brace", "{target}/{registry", "r.io", "unclosed '{'"},
		{"a stray closing brace", "{target}/x}", "r.io", "unbalanced '}'"},
		{"an unknown placeholder", "{target}/{tag}", "r.io", "unknown placeholder {tag}"},
		{"target without a targetRegistry", "{target}/{image}", "", "targetRegistry is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTemplate(c.template, c.target)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.template) {
				t.Fatalf("ParseTemplate(%q): %v, want an error quoting the template and containing %q", c.template, err, c.want)
			}
		})
	}
}
