package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child process the test started and stops.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	// err is cmd.Wait's result, set before exited closes.
	err error
}

// startProcess starts bin with args, collecting its output.
func startProcess(name, bin string, args ...string) (*process, error) {
	p := &process{name: name, out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Should the test binary die without its cleanups (a -timeout panic),
	// the kernel stops the child rather than leaving it running.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// grace. It returns the exit error of a process that did not exit cleanly
// on SIGTERM, and nil when it had exited already or exited with status 0.
func (p *process) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	// An error means that it has just exited.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, grace)
	}
}

// logs returns the end of the process's output, for failure messages.
func (p *process) logs() string {
	const keep = 64 << 10
	s := p.out.String()
	if len(s) > keep {
		s = "...\n" + s[len(s)-keep:]
	}
	return s
}

// lockedBuffer is a bytes.Buffer safe for a process's two output streams
// and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a 127.0.0.1 address with a port that is free right now.
// Callers retry when another process takes it first.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// buildImageSwapper builds ./cmd/image-swapper into dir.
func buildImageSwapper(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: %q is not a module's go.mod", gomod)
	}
	bin := filepath.Join(dir, "image-swapper")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/image-swapper")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/image-swapper: %v\n%s", err, out)
	}
	return bin, nil
}

// eventually calls check every interval until it returns nil or timeout
// passes, and returns its last error. The timeouts callers give are
// generous bounds for a loaded machine, not performance assertions.
func eventually(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}
