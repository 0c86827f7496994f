package scan

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// fakeScannerSource is a scanner stand-in: a real executable that prints
// a report file, records its argv, environment and DOCKER_CONFIG, and can
// fail, write stderr, or wait, as its environment says.
const fakeScannerSource = `package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	rec := map[string]any{"argv": os.Args, "env": os.Environ()}
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		p := filepath.Join(dir, "config.json")
		if st, err := os.Stat(p); err == nil {
			rec["configMode"] = st.Mode().Perm().String()
		}
		if data, err := os.ReadFile(p); err == nil {
			rec["config"] = string(data)
		}
	}
	if p := os.Getenv("FAKE_RECORD"); p != "" {
		data, _ := json.Marshal(rec)
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			panic(err)
		}
		f.Write(append(data, '\n'))
		f.Close()
	}
	if p := os.Getenv("FAKE_WAIT_FOR"); p != "" {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if s := os.Getenv("FAKE_STDERR"); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	if os.Getenv("FAKE_EXIT") != "" {
		var code int
		fmt.Sscan(os.Getenv("FAKE_EXIT"), &code)
		os.Exit(code)
	}
	data, err := os.ReadFile(os.Getenv("FAKE_REPORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.Write(data)
}
`

var (
	fakeOnce sync.Once
	fakePath string
	fakeErr  error
)

// fakeScanner builds the stand-in once per test binary.
func fakeScanner(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fake-scanner-")
		if err != nil {
			fakeErr = err
			return
		}
		src := filepath.Join(dir, "main.go")
		if fakeErr = os.WriteFile(src, []byte(fakeScannerSource), 0o600); fakeErr != nil {
			return
		}
		fakePath = filepath.Join(dir, "fake-trivy")
		cmd := exec.Command("go", "build", "-o", fakePath, src)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeErr = errors.New(string(out))
		}
	})
	if fakeErr != nil {
		t.Fatalf("building the fake scanner: %v", fakeErr)
	}
	return fakePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakePath != "" {
		os.RemoveAll(filepath.Dir(fakePath))
	}
	os.Exit(code)
}

type record struct {
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
	Config     string   `json:"config"`
	ConfigMode string   `json:"configMode"`
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the scanner's record: %v", err)
	}
	var out []record
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func envOf(r record, key string) (string, bool) {
	for _, kv := range r.Env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

const (
	testUser     = "robot$scanner"
	testPassword = "s3cr3t-Pa55word-xyz"
)

func testRunner(t *testing.T, env ...string) (*Runner, string) {
	t.Helper()
	recordPath := filepath.Join(t.TempDir(), "record.jsonl")
	base := []string{"PATH=" + os.Getenv("PATH"), "FAKE_RECORD=" + recordPath, "DOCKER_CONFIG=/should/be/replaced"}
	return &Runner{
		Command: []string{fakeScanner(t), "image", "--format", "json", "--quiet"},
		Timeout: time.Minute,
		Env:     append(base, env...),
		Auth: func(ctx context.Context, ref reference.Reference) (*authn.AuthConfig, error) {
			return &authn.AuthConfig{Username: testUser, Password: testPassword}, nil
		},
	}, recordPath
}

var testDigest = "sha256:" + strings.Repeat("f", 64)

func TestRunnerPassesCredentialsThroughDockerConfigNeverArgv(t *testing.T) {
	abs, err := filepath.Abs("testdata/trivy/debian-buster.json")
	if err != nil {
		t.Fatal(err)
	}
	r, recordPath := testRunner(t, "FAKE_REPORT="+abs)
	ref := mustRef(t, "registry.example.com:5000/team/app:1.0@"+testDigest)
	rep, err := r.Scan(context.Background(), ref)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if rep.Format != FormatTrivy || len(rep.Findings) != 2 {
		t.Errorf("report %s with %d findings, want the debian-buster report", rep.Format, len(rep.Findings))
	}
	rec := readRecords(t, recordPath)[0]
	wantArgv := []string{fakeScanner(t), "image", "--format", "json", "--quiet", "registry.example.com:5000/team/app@" + testDigest}
	if !slices.Equal(rec.Argv, wantArgv) {
		t.Errorf("argv = %q, want %q", rec.Argv, wantArgv)
	}
	encoded := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))
	for _, a := range rec.Argv {
		if strings.Contains(a, testPassword) || strings.Contains(a, encoded) {
			t.Errorf("argv element %q holds the credential", a)
		}
	}
	dir, ok := envOf(rec, "DOCKER_CONFIG")
	if !ok || dir == "/should/be/replaced" {
		t.Fatalf("DOCKER_CONFIG = %q, %t; want a temporary directory", dir, ok)
	}
	if rec.ConfigMode != "-rw-------" {
		t.Errorf("config.json mode %s, want -rw-------", rec.ConfigMode)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal([]byte(rec.Config), &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if cfg.Auths["registry.example.com:5000"].Auth != encoded {
		t.Errorf("config.json auths = %v, want the credentials for registry.example.com:5000", cfg.Auths)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("DOCKER_CONFIG directory %s still exists after the scan (%v)", dir, err)
	}
}

func TestRunnerDockerHubCredentialsUseTheLegacyKey(t *testing.T) {
	abs, _ := filepath.Abs("testdata/trivy/gomod.json")
	r, recordPath := testRunner(t, "FAKE_REPORT="+abs)
	if _, err := r.Scan(context.Background(), mustRef(t, "nginx@"+testDigest)); err != nil {
		t.Fatal(err)
	}
	rec := readRecords(t, recordPath)[0]
	if !strings.Contains(rec.Config, `"https://index.docker.io/v1/"`) || !strings.Contains(rec.Config, `"docker.io"`) {
		t.Errorf("config.json %s lacks Docker Hub's keys", rec.Config)
	}
	if got := rec.Argv[len(rec.Argv)-1]; got != "docker.io/library/nginx@"+testDigest {
		t.Errorf("image argument %q", got)
	}
}

func TestRunnerFailureIsAScanErrorWithoutCredentials(t *testing.T) {
	r, _ := testRunner(t, "FAKE_EXIT=3", "FAKE_STDERR=FATAL unauthorized: login "+testUser+":"+testPassword+" rejected; "+strings.Repeat("x", 5000)+" final cause")
	_, err := r.Scan(context.Background(), mustRef(t, "registry.example.com/app@"+testDigest))
	var se *ScanError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *ScanError", err)
	}
	if se.ExitCode != 3 || se.TimedOut {
		t.Errorf("exit code %d, timed out %t; want 3, false", se.ExitCode, se.TimedOut)
	}
	msg := err.Error()
	if strings.Contains(msg, testPassword) {
		t.Errorf("error holds the password: %s", msg)
	}
	if !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "final cause") || len(se.Stderr) > maxStderr+len("…") {
		t.Errorf("error %.200q… (stderr %d bytes) lacks the status or the end of stderr, or is not truncated", msg, len(se.Stderr))
	}
	if !strings.Contains(msg, "registry.example.com/app@"+testDigest) {
		t.Errorf("error %.200q does not name the image", msg)
	}
}

func TestRunnerRedactsBeforeTruncating(t *testing.T) {
	// A password that straddles the cut must not leave a fragment.
	got := tail(redact(strings.Repeat("a", 100)+testPassword+strings.Repeat("b", 10), []string{testPassword}), 15)
	if strings.ContainsAny(got, "s3P5") {
		t.Errorf("tail = %q holds a fragment of the password", got)
	}
}

func TestRunnerTimeout(t *testing.T) {
	r, _ := testRunner(t, "FAKE_WAIT_FOR="+filepath.Join(t.TempDir(), "never"))
	r.Timeout = 100 * time.Millisecond
	_, err := r.Scan(context.Background(), mustRef(t, "registry.example.com/app@"+testDigest))
	var se *ScanError
	if !errors.As(err, &se) || !se.TimedOut || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("error %v, want a timeout ScanError", err)
	}
}

func TestRunnerUnreadableOutputNamesTheScanner(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"bomFormat":"CycloneDX"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := testRunner(t, "FAKE_REPORT="+bad)
	_, err := r.Scan(context.Background(), mustRef(t, "registry.example.com/app@"+testDigest))
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "output of "+fakeScanner(t)+" for registry.example.com/app@") {
		t.Errorf("error %v, want ErrUnknownFormat naming the scanner and image", err)
	}
}

func TestRunnerRefusesAnImageWithoutDigest(t *testing.T) {
	r, _ := testRunner(t)
	if _, err := r.Scan(context.Background(), mustRef(t, "nginx:1.27")); err == nil || !strings.Contains(err.Error(), "no digest") {
		t.Errorf("error %v, want one saying the image has no digest", err)
	}
}
