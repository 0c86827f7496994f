// Package storetest starts throwaway PostgreSQL clusters for tests.
package storetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// Postgres is a throwaway PostgreSQL cluster on 127.0.0.1, owned by the
// test that started it.
type Postgres struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	// asUser runs the server as this OS user (postgres refuses root).
	asUser string
}

// StartPostgres starts a cluster with initdb and pg_ctl on a free port and
// stops it, deleting its files, in t.Cleanup. Without PostgreSQL the test is
// skipped, or fails when CI=true, so that CI never silently skips it.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := findBin()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's initdb is not installed (looked in PATH and /usr/lib/postgresql/*/bin); .ci/run installs the postgresql package")
		}
		t.Skip("PostgreSQL's initdb is not installed; apt-get install postgresql")
	}
	p := &Postgres{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root, PostgreSQL needs a non-root user: no postgres user: %v", err)
		}
		p.asUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "image-swapper-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if p.asUser != "" {
		// The server user must reach its directory.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p.run("chown", "postgres", dir)
	}
	p.port = freePort(t)
	p.run(filepath.Join(bin, "initdb"), "-D", p.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	p.Start()
	t.Cleanup(p.Stop)
	p.psql("CREATE DATABASE ledger")
	return p
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// DSN is the URL of the test database, user postgres without password.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/ledger?sslmode=disable", p.port)
}

// Start starts the server (again, after Stop) on its port.
func (p *Postgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", p.port, p.dir)
	p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data(), "-l", filepath.Join(p.dir, "log"), "-o", opts, "-w", "start")
}

// Stop stops the server, disconnecting its clients; stopping a stopped
// server does nothing.
func (p *Postgres) Stop() {
	p.t.Helper()
	if _, err := os.Stat(filepath.Join(p.data(), "postmaster.pid")); err != nil {
		return
	}
	p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data(), "-m", "immediate", "-w", "stop")
}

func (p *Postgres) psql(sql string) {
	p.t.Helper()
	psql := filepath.Join(p.bin, "psql")
	if _, err := os.Stat(psql); err != nil {
		psql = "psql"
	}
	p.run(psql, "-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)
}

// run runs a command as the server user, failing the test with its output.
func (p *Postgres) run(name string, args ...string) {
	p.t.Helper()
	var cmd *exec.Cmd
	if p.asUser != "" && name != "chown" {
		cmd = exec.Command("runuser", append([]string{"-u", p.asUser, "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = p.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", name, args, err, out.Bytes(), log)
	}
}

func findBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
