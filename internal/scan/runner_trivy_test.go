package scan

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// The synthetic database and image of the real-Trivy tests. The ids are
// invented (CVE-2099-…) so that no output of these tests reads like a real
// finding.
var (
	trivyVulns = []testenv.TrivyVuln{
		{ID: "CVE-2099-1001", Package: "vulnpkg", FixedVersion: "1.0.1-r0", Severity: "HIGH",
			CVSSv3: 7.5, CVSSv3Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", Title: "vulnpkg: heap overflow in the parser"},
		// musl is installed at its fixed version: not vulnerable.
		{ID: "CVE-2099-1002", Package: "musl", FixedVersion: "1.2.5-r9", Severity: "CRITICAL", CVSSv3: 9.8, Title: "musl: fixed already"},
		{ID: "CVE-2099-1003", Package: "nofix", Severity: "MEDIUM", CVSSv3: 5.3, Title: "nofix: no fix exists"},
		// Alpine's own severity wins over NVD's in Trivy's selection.
		{ID: "CVE-2099-1004", Package: "vendorsev", FixedVersion: "0.2-r0", Severity: "CRITICAL", VendorSeverity: map[string]string{"alpine": "LOW"},
			CVSSv3: 9.1, Title: "vendorsev: Alpine rates it low"},
		// No image has ghostpkg.
		{ID: "CVE-2099-1005", Package: "ghostpkg", FixedVersion: "9-r0", Severity: "CRITICAL", CVSSv3: 10},
	}
	trivyPackages = []testenv.ApkPackage{
		// A subpackage: the advisory names its origin.
		{Name: "vulnpkg-libs", Version: "1.0.0-r0", Origin: "vulnpkg"},
		{Name: "musl", Version: "1.2.5-r9"},
		{Name: "nofix", Version: "2.0-r0"},
		{Name: "vendorsev", Version: "0.1-r0"},
	}
	// trivyFindings are what Trivy must report for trivyPackages.
	trivyFindings = []Finding{
		{ID: "CVE-2099-1001", Package: "vulnpkg-libs", Installed: "1.0.0-r0", Fixed: "1.0.1-r0", Severity: SeverityHigh, CVSS: 7.5, HasCVSS: true, Status: "fixed"},
		{ID: "CVE-2099-1003", Package: "nofix", Installed: "2.0-r0", Severity: SeverityMedium, CVSS: 5.3, HasCVSS: true, Unfixed: true, Status: "affected"},
		{ID: "CVE-2099-1004", Package: "vendorsev", Installed: "0.1-r0", Fixed: "0.2-r0", Severity: SeverityLow, CVSS: 9.1, HasCVSS: true, Status: "fixed"},
	}
)

// trivyRunner is the Runner security.scanning with command makes.
func trivyRunner(command []string) *Runner {
	return NewRunner(config.Scanning{Enabled: true, Provider: "trivy", Command: command})
}

// checkTrivyReport checks that rep is Trivy's report of the image digest
// with exactly want. PURL is not compared: it is Trivy's to spell.
func checkTrivyReport(t *testing.T, rep *Report, digest string, want []Finding) {
	t.Helper()
	if rep.Format != FormatTrivy || rep.ScannerVersion == "" {
		t.Errorf("report format %q, scanner version %q; want a Trivy report that names its version", rep.Format, rep.ScannerVersion)
	}
	if rep.Digest != digest {
		t.Errorf("report digest %q, want the scanned %s", rep.Digest, digest)
	}
	got := map[string]Finding{}
	for _, f := range rep.Findings {
		if _, dup := got[f.ID]; dup {
			t.Errorf("%s reported twice", f.ID)
		}
		f.PURL = ""
		got[f.ID] = f
	}
	for _, w := range want {
		g, ok := got[w.ID]
		if !ok {
			t.Errorf("%s missing from the report", w.ID)
			continue
		}
		if g.Package != w.Package || g.Installed != w.Installed || g.Fixed != w.Fixed || g.Severity != w.Severity ||
			g.CVSS != w.CVSS || g.HasCVSS != w.HasCVSS || g.Unfixed != w.Unfixed || g.Status != w.Status {
			t.Errorf("%s:\n got %+v\nwant %+v", w.ID, g, w)
		}
		delete(got, w.ID)
	}
	for id, f := range got {
		t.Errorf("unexpected finding %s: %+v", id, f)
	}
}

func TestRealTrivyReportsTheSyntheticVulnerabilities(t *testing.T) {
	bin := testenv.TrivyBinary(t)
	reg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	cache := testenv.WriteTrivyDB(t, trivyVulns)
	digest := testenv.PushAlpineImage(t, reg.Host+"/team/alpine:3.22", trivyPackages)

	rep, err := trivyRunner(testenv.TrivyCommand(bin, cache)).Scan(context.Background(), mustRef(t, reg.Host+"/team/alpine:3.22@"+digest))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	checkTrivyReport(t, rep, digest, trivyFindings)
}

func TestRealTrivyClientServerReportsTheSyntheticVulnerabilities(t *testing.T) {
	bin := testenv.TrivyBinary(t)
	reg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	cache := testenv.WriteTrivyDB(t, trivyVulns)
	digest := testenv.PushAlpineImage(t, reg.Host+"/team/alpine:3.22", trivyPackages)
	url, token := testenv.StartTrivyServer(t, bin, cache)
	ref := mustRef(t, reg.Host+"/team/alpine@"+digest)

	r := trivyRunner(testenv.TrivyClientCommand(bin, url))
	// The token reaches the client through its environment, never argv.
	r.Env = append(os.Environ(), testenv.TrivyTokenEnv+"="+token)
	rep, err := r.Scan(context.Background(), ref)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	checkTrivyReport(t, rep, digest, trivyFindings)

	t.Run("a client without the token is refused", func(t *testing.T) {
		r := trivyRunner(testenv.TrivyClientCommand(bin, url))
		r.Env = append(os.Environ(), testenv.TrivyTokenEnv+"=wrong-"+token)
		_, err := r.Scan(context.Background(), ref)
		var se *ScanError
		if !errors.As(err, &se) || se.ExitCode <= 0 {
			t.Fatalf("error %v, want a ScanError with an exit status", err)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("error holds the server's token: %v", err)
		}
	})
}

func TestRealTrivyPullsFromAPasswordProtectedRegistryThroughDockerConfig(t *testing.T) {
	bin := testenv.TrivyBinary(t)
	user, password := "scanner", testenv.RandomSecret(t)
	reg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{Htpasswd: testenv.WriteHtpasswd(t, user, password)})
	cache := testenv.WriteTrivyDB(t, trivyVulns)
	digest := testenv.PushAlpineImage(t, reg.Host+"/team/alpine:3.22", trivyPackages,
		remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	ref := mustRef(t, reg.Host+"/team/alpine@"+digest)

	tests := []struct {
		name     string
		auth     *authn.AuthConfig
		wantScan bool
	}{
		{"the Runner's credentials get the image to Trivy", &authn.AuthConfig{Username: user, Password: password}, true},
		{"without credentials Trivy cannot pull it", nil, false},
		{"a wrong password is refused and not repeated", &authn.AuthConfig{Username: user, Password: "wrong-" + password}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := trivyRunner(testenv.TrivyCommand(bin, cache))
			r.Auth = func(context.Context, reference.Reference) (*authn.AuthConfig, error) { return tt.auth, nil }
			rep, err := r.Scan(context.Background(), ref)
			if tt.wantScan {
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				checkTrivyReport(t, rep, digest, trivyFindings)
				return
			}
			var se *ScanError
			if !errors.As(err, &se) || se.ExitCode <= 0 {
				t.Fatalf("error %v, want a ScanError with an exit status", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
}

func TestRealTrivyScansEachPlatformOfAnIndexByItsDigest(t *testing.T) {
	bin := testenv.TrivyBinary(t)
	reg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	cache := testenv.WriteTrivyDB(t, trivyVulns)
	// Only the arm64 image has the vulnerable vulnpkg.
	fixed := []testenv.ApkPackage{{Name: "vulnpkg-libs", Version: "1.0.1-r0", Origin: "vulnpkg"}}
	vulnerable := []testenv.ApkPackage{{Name: "vulnpkg-libs", Version: "1.0.0-r0", Origin: "vulnpkg"}}
	idx := testenv.PushAlpineIndex(t, reg.Host+"/team/multi:1.0", map[string][]testenv.ApkPackage{
		"linux/amd64": fixed,
		"linux/arm64": vulnerable,
	})
	r := trivyRunner(testenv.TrivyCommand(bin, cache))

	tests := []struct {
		platform string
		want     []Finding
	}{
		{"linux/amd64", nil},
		{"linux/arm64", trivyFindings[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			digest := idx.Platforms[tt.platform]
			rep, err := r.Scan(context.Background(), mustRef(t, reg.Host+"/team/multi@"+digest))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			checkTrivyReport(t, rep, digest, tt.want)
		})
	}
	// Why the gate scans each platform's digest: given the index, Trivy
	// scans one platform (go-containerregistry's default, linux/amd64)
	// and its report names the index's digest, as if it covered them all.
	t.Run("the index digest gets linux/amd64 only", func(t *testing.T) {
		rep, err := r.Scan(context.Background(), mustRef(t, reg.Host+"/team/multi@"+idx.Digest))
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		checkTrivyReport(t, rep, idx.Digest, nil)
	})
}
