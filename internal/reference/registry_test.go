package reference

import "testing"

func TestPathSafeRegistry(t *testing.T) {
	tests := []struct {
		name string
		host string
		want string
	}{
		{"docker hub stays as is", "docker.io", "docker.io"},
		{"public host stays as is", "quay.io", "quay.io"},
		{"ECR host stays as is", "123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
		{"port becomes underscore", "localhost:5000", "localhost_5000"},
		{"IPv4 with port", "127.0.0.1:5000", "127.0.0.1_5000"},
		{"upper-case host is lowercased", "Quay.IO", "quay.io"},
		{"upper-case host with port", "EXAMPLE.com:8443", "example.com_8443"},
		{"punycode dashes are kept", "xn--n3h.com:18080", "xn--n3h.com_18080"},
		{"IPv6 loopback with port is expanded", "[::1]:5000", "0000_0000_0000_0000_0000_0000_0000_0001_5000"},
		{"IPv6 without port is expanded", "[2001:db8::1]", "2001_0db8_0000_0000_0000_0000_0000_0001"},
		{"upper-case IPv6 is lowercased", "[FC00::1]:5000", "fc00_0000_0000_0000_0000_0000_0000_0001_5000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PathSafeRegistry(tc.host)
			if got != tc.want {
				t.Errorf("PathSafeRegistry(%q) = %q, want %q", tc.host, got, tc.want)
			}
			if reason := checkComponent(got); reason != "" {
				t.Errorf("PathSafeRegistry(%q) = %q is not a path component: %s", tc.host, got, reason)
			}
		})
	}
}

// TestPathSafeRegistryIsInjective maps hosts that differ only in the ways
// that could plausibly collide (ports, IPv6 spellings, lookalike names) and
// requires that distinct registries keep distinct outputs while different
// spellings of the same registry share one.
func TestPathSafeRegistryIsInjective(t *testing.T) {
	// Each group lists spellings of one registry.
	groups := [][]string{
		{"localhost"},
		{"localhost:5000"},
		{"localhost:50"},
		{"localhost:500"},
		{"localhost5000"},
		{"localhost-5000"},
		{"localhost.5000"},
		{"example.com", "EXAMPLE.COM", "Example.Com"},
		{"example.com:5000"},
		{"example.com.5000"},
		{"example.co"},
		{"127.0.0.1"},
		{"127.0.0.1:5000"},
		{"[::1]", "[0:0:0:0:0:0:0:1]", "[0000::0001]"},
		{"[::1]:5000", "[0::1]:5000"},
		{"[::1]:500"},
		{"[::]"},
		{"[::1:5000]"},
		{"[2001:db8::1]", "[2001:DB8::1]", "[2001:0db8:0:0:0:0:0:1]"},
		{"[2001:db8::1]:443"},
		{"[2001:db8::1:443]"},
		{"0000.0000.0000.0000.0000.0000.0000.0001"},
	}
	seen := map[string]string{}
	for _, group := range groups {
		first := PathSafeRegistry(group[0])
		for _, host := range group {
			if _, err := ParseRegistry(host); err != nil {
				t.Fatalf("test host %q is not a valid registry: %v", host, err)
			}
			got := PathSafeRegistry(host)
			if got != first {
				t.Errorf("PathSafeRegistry(%q) = %q but PathSafeRegistry(%q) = %q; they name the same registry", host, got, group[0], first)
			}
		}
		if other, dup := seen[first]; dup {
			t.Errorf("PathSafeRegistry(%q) and PathSafeRegistry(%q) both give %q", group[0], other, first)
		}
		seen[first] = group[0]
	}
}

func BenchmarkPathSafeRegistry(b *testing.B) {
	for _, host := range []string{"docker.io", "localhost:5000", "[2001:db8::1]:5000"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = PathSafeRegistry(host)
			}
		})
	}
}

func TestRegistryFromPathSafeInvertsPathSafeRegistry(t *testing.T) {
	for _, host := range []string{"docker.io", "localhost:5000", "127.0.0.1:5000", "[::1]", "[::1]:5000", "[fc00::1]:443", "registry.example.com"} {
		got, ok := RegistryFromPathSafe(PathSafeRegistry(host))
		if !ok || got != host {
			t.Errorf("RegistryFromPathSafe(PathSafeRegistry(%q)) = %q, %v; want %q, true", host, got, ok, host)
		}
	}
	for _, bad := range []string{"", "a_b_c", "_5000", "host_", "Quay.io", "0000_0000_0000_0000_0000_0000_0000_0001_x"} {
		if got, ok := RegistryFromPathSafe(bad); ok {
			t.Errorf("RegistryFromPathSafe(%q) = %q, true; want false", bad, got)
		}
	}
}

func FuzzRegistryFromPathSafe(f *testing.F) {
	for _, s := range []string{"docker.io", "localhost_5000", "0000_0000_0000_0000_0000_0000_0000_0001_5000", "a_b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, ok := RegistryFromPathSafe(s)
		if ok && PathSafeRegistry(host) != s {
			t.Fatalf("RegistryFromPathSafe(%q) = %q, whose path-safe form is %q", s, host, PathSafeRegistry(host))
		}
	})
}
