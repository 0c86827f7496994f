package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumNames are the names a headless Chromium goes by.
var chromiumNames = []string{"chromium", "chromium-headless-shell", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Chromium returns the path of a Chromium to run headless:
// $IMAGE_SWAPPER_CHROMIUM, else the first of chromiumNames on $PATH. It
// skips the test without one, or fails it under CI (.ci/run installs
// Debian's chromium).
func Chromium(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("IMAGE_SWAPPER_CHROMIUM")
	if bin == "" {
		for _, name := range chromiumNames {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	Require(t, bin != "", "no Chromium: apt-get install -y chromium (or set IMAGE_SWAPPER_CHROMIUM)")
	return bin
}

// RunChromium runs Chromium headless, offline and without a profile of
// its own (a fresh one under a temporary directory), with args after its
// fixed flags (--dump-dom URL, --screenshot=FILE URL, ...). It returns
// standard output and the page's console: Chromium logs every console
// message (and every uncaught error and CSP violation) to stderr as a
// line holding "CONSOLE".
func RunChromium(t testing.TB, bin string, args ...string) (stdout string, console []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0"}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	cmd.SysProcAttr = dieWithParent()
	var out, errOut Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, errOut.Tail())
	}
	for _, line := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(line, "CONSOLE") {
			console = append(console, line)
		}
	}
	return out.String(), console
}
