package registry

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

func TestLoopbackIsWhatContainerdCallsLocalhost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:5001", true},
		{"LocalHost:5000", true},
		{"127.0.0.1", true},
		{"127.0.0.1:5000", true},
		{"127.1.2.3:5000", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"[::1]", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},

		{"10.0.0.5:5000", false},
		{"172.16.0.1:5000", false},
		{"172.31.255.255", false},
		{"192.168.1.10:5000", false},
		{"192.0.2.2:5000", false},
		{"128.0.0.1:5000", false},
		{"0.0.0.0:5000", false},
		{"[::]:5000", false},
		{"[::2]:5000", false},
		{"[fd00::2]:5000", false},
		{"registry.localhost:5000", false},
		{"localhost.example.com", false},
		{"127.0.0.1.nip.io:5000", false},
		{"docker.io", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Loopback(tt.host); got != tt.want {
			t.Errorf("Loopback(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

// firstBytes records how each connection to a listener starts: 0x16 is a
// TLS handshake, a letter a plain HTTP request.
type firstBytes struct {
	net.Listener
	mu    sync.Mutex
	first []byte
}

func (l *firstBytes) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peekConn{Conn: c, l: l}, nil
}

func (l *firstBytes) started() (tls, plain bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.first {
		if b == 0x16 {
			tls = true
		} else {
			plain = true
		}
	}
	return tls, plain
}

type peekConn struct {
	net.Conn
	l    *firstBytes
	seen bool
}

func (c *peekConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.seen {
		c.seen = true
		c.l.mu.Lock()
		c.l.first = append(c.l.first, p[0])
		c.l.mu.Unlock()
	}
	return n, err
}

// plainRegistry serves an in-process registry over plain HTTP on addr
// ("127.0.0.1:0", "192.0.2.2:0"), recording how connections start.
func plainRegistry(t *testing.T, addr string) (*httptest.Server, *firstBytes) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fb := &firstBytes{Listener: ln}
	srv := &httptest.Server{Listener: fb, Config: &http.Server{
		Handler:  ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))),
		ErrorLog: log.New(io.Discard, "", 0), // the TLS attempts are expected
	}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, fb
}

func TestALoopbackRegistryIsTriedOverHTTPSThenPlainHTTP(t *testing.T) {
	src, srcConns := plainRegistry(t, "127.0.0.1:0")
	dst, _ := plainRegistry(t, "127.0.0.1:0")
	srcHost, dstHost := strings.TrimPrefix(src.URL, "http://"), strings.TrimPrefix(dst.URL, "http://")
	seed(t, srcHost+"/src/app:1", platformIndex(t, "linux/amd64", "linux/arm64"))

	// No registries section at all.
	c := newClient(t, &config.Config{})
	from, _ := reference.Parse(srcHost + "/src/app:1")
	to, _ := reference.Parse(dstHost + "/mirror/app:1")
	res, err := c.Copy(t.Context(), from, to, CopyOptions{})
	if err != nil || !res.Copied {
		t.Fatalf("Copy() = %+v, %v", res, err)
	}
	if _, ok, err := c.Exists(t.Context(), to); err != nil || !ok {
		t.Errorf("Exists(copy) = %v, %v", ok, err)
	}
	if tls, plain := srcConns.started(); !tls || !plain {
		t.Errorf("connections began with TLS: %v, plain HTTP: %v; want HTTPS tried, then HTTP", tls, plain)
	}

	t.Run("over ::1 too", func(t *testing.T) {
		ln, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		ln.Close()
		v6, _ := plainRegistry(t, "[::1]:0")
		to, _ := reference.Parse(strings.TrimPrefix(v6.URL, "http://") + "/mirror/app:1")
		if res, err := c.Copy(t.Context(), from, to, CopyOptions{}); err != nil || !res.Copied {
			t.Fatalf("Copy() = %+v, %v", res, err)
		}
	})
}

func TestALoopbackRegistryOverHTTPSIsStillVerified(t *testing.T) {
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ref, _ := reference.Parse(strings.TrimPrefix(srv.URL, "https://") + "/src/app:1")
	_, _, err := newClient(t, &config.Config{}).Exists(t.Context(), ref)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("Exists() = %v, want the self-signed certificate refused", err)
	}
}

// nonLoopbackAddress is an address of one of the machine's interfaces
// that is not loopback, or "" when it has none.
func nonLoopbackAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.To4() == nil {
			continue
		}
		return ipn.IP.String()
	}
	return ""
}

func TestPlainHTTPToAnyOtherHostNeedsInsecure(t *testing.T) {
	ip := nonLoopbackAddress(t)
	if ip == "" {
		t.Skip("the machine has no non-loopback IPv4 address; TestLoopbackIsWhatContainerdCallsLocalhost covers the decision")
	}
	srv, conns := plainRegistry(t, net.JoinHostPort(ip, "0"))
	host := strings.TrimPrefix(srv.URL, "http://")
	if Loopback(host) {
		t.Fatalf("%s counts as loopback", host)
	}
	seed(t, host+"/src/app:1", platformIndex(t, "linux/amd64"))
	ref, _ := reference.Parse(host + "/src/app:1")
	conns.mu.Lock()
	conns.first = nil // the seeding's
	conns.mu.Unlock()

	_, _, err := newClient(t, &config.Config{}).Exists(t.Context(), ref)
	want := `refusing plain HTTP to ` + host + `: set registries["` + host + `"].insecure: true to allow it`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Exists() = %v, want an error containing %s", err, want)
	}
	if _, plain := conns.started(); plain {
		t.Error("a plain HTTP request reached the registry")
	}

	cfg := &config.Config{Registries: map[string]config.RegistryAccess{host: {Insecure: true}}}
	if _, ok, err := newClient(t, cfg).Exists(t.Context(), ref); err != nil || !ok {
		t.Errorf("with insecure: true, Exists() = %v, %v; want found", ok, err)
	}
}

func TestTheRouterTriesHTTPSFirstForLoopbackOnly(t *testing.T) {
	tests := []struct {
		name, url string
		want      string // where it was sent, or the error
	}{
		{"a loopback ping over http is tried over https", "http://127.0.0.1:5000/v2/", "https://127.0.0.1:5000/v2/"},
		{"localhost too", "http://localhost:5001/v2/", "https://localhost:5001/v2/"},
		{"and ::1", "http://[::1]:5000/v2/", "https://[::1]:5000/v2/"},
		{"https to loopback stays https", "https://127.0.0.2:5000/v2/", "https://127.0.0.2:5000/v2/"},
		{"a private address is not loopback", "http://10.0.0.5:5000/v2/", `refusing plain HTTP to 10.0.0.5:5000: set registries["10.0.0.5:5000"].insecure: true to allow it`},
		{"nor is 192.168/16", "http://192.168.1.10:5000/v2/", `refusing plain HTTP to 192.168.1.10:5000: set registries["192.168.1.10:5000"].insecure: true to allow it`},
		{"nor 172.16/12", "http://172.16.0.1:5000/v2/", `refusing plain HTTP to 172.16.0.1:5000: set registries["172.16.0.1:5000"].insecure: true to allow it`},
		{"nor a name under .localhost", "http://registry.localhost:5000/v2/", `refusing plain HTTP to registry.localhost:5000: set registries["registry.localhost:5000"].insecure: true to allow it`},
	}
	base := &captured{}
	c := newClient(t, &config.Config{}, WithTransport(base))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
			n := len(base.reqs)
			_, err := c.router.RoundTrip(req)
			got := ""
			if err != nil {
				got = err.Error()
			} else if len(base.reqs) > n {
				got = base.reqs[len(base.reqs)-1].URL.String()
			}
			if got != tt.want {
				t.Errorf("RoundTrip(%s) = %s, want %s", tt.url, got, tt.want)
			}
		})
	}
}
