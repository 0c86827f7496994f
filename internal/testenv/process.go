package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a child process a test started and stops.
type Process struct {
	name   string
	cmd    *exec.Cmd
	out    *Buffer
	exited chan struct{}
	// err is cmd.Wait's result, set before exited closes.
	err error
}

// StartProcess starts bin with args, collecting its stdout and stderr.
// name says what it is in messages ("docker-registry on 127.0.0.1:5000").
func StartProcess(name, bin string, args ...string) (*Process, error) {
	return StartProcessWithEnv(name, bin, nil, args...)
}

// StartProcessWithEnv is StartProcess with env added to the test's
// environment ("KEY=value" entries; later ones win).
func StartProcessWithEnv(name, bin string, env []string, args ...string) (*Process, error) {
	p := &Process{name: name, out: &Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = dieWithParent()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// grace. It returns the exit error of a process that did not exit cleanly
// on SIGTERM, and nil when it had exited already or exited with status 0.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
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

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits for the
// process to exit. Killing an exited process does nothing.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	// An error means that it has just exited.
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Output returns everything the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Logs returns the end of the process's output, for failure messages.
func (p *Process) Logs() string { return p.out.Tail() }

// Buffer is a bytes.Buffer safe for a process's two output streams and a
// reader, or for any log written from several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Tail returns the last 64 KiB written, enough for a failure message
// without flooding it.
func (b *Buffer) Tail() string {
	const keep = 64 << 10
	s := b.String()
	if len(s) > keep {
		s = "...\n" + s[len(s)-keep:]
	}
	return s
}

// FreeAddr returns a 127.0.0.1 address with a port that is free right now.
// Another process may take it before the caller binds it: callers retry.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
