package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// docSkips are the documented commands that this test does not run, each
// with why: they need a cluster, a registry, another tool or a shell.
// Every other image-swapper command in a code block of the README or of
// docs/ runs, and an entry that matches no documented command fails the
// test, so the list stays true. Keys are the command line as written,
// continuation lines joined, comments dropped, blanks collapsed (oneLine).
var docSkips = map[string]string{
	"image-swapper serve --config /etc/image-swapper/config.yaml --self-signed --namespace image-swapper-system":                                           "serve needs a Kubernetes API for its Secret and webhook configurations, and runs until stopped",
	"image-swapper serve --config config.yaml --tls-cert tls.crt --tls-key tls.key --no-kube-api --listen 127.0.0.1:8443 --log-format json 2>server.log &": "a background server for the load benchmark, run by a shell",
	"image-swapper serve --config my-config.yaml --tls-cert tls.crt --tls-key tls.key --listen 127.0.0.1:8443 --context kind-kind":                         "serve needs a cluster (the kind-kind context) and runs until stopped",
	"helm template my-release ./chart | image-swapper mirror --config my-config.yaml --from-manifests -":                                                   "needs helm and a chart, and registries to copy between",
}

// docFixtures are the files the documented commands name that no
// document or directory of the repository holds as a file: each is made
// from what the docs say it is.
func docFixtures(t *testing.T, root string) map[string]string {
	t.Helper()
	// "The smallest useful configuration", the first YAML block of
	// configuration.md: the docs save it as config.yaml and my-config.yaml.
	blocks := fencedBlocks(t, filepath.Join(root, "docs", "configuration.md"))
	i := slices.IndexFunc(blocks, func(b codeBlock) bool { return b.info == "yaml" })
	if i < 0 {
		t.Fatal("docs/configuration.md has no yaml block for config.yaml")
	}
	smallest := strings.Join(blocks[i].lines, "\n") + "\n"
	return map[string]string{"config.yaml": smallest, "my-config.yaml": smallest}
}

// codeBlock is one fenced code block of a Markdown file.
type codeBlock struct {
	info  string // the fence's info string: sh, console, yaml...
	start int    // line number of its first line
	lines []string
}

func fencedBlocks(t *testing.T, path string) []codeBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []codeBlock
	var cur *codeBlock
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if cur == nil {
				cur = &codeBlock{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), start: n + 1}
			} else {
				blocks = append(blocks, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s: the code block from line %d is not closed", path, cur.start-1)
	}
	return blocks
}

// docCommand is one image-swapper command line of a code block.
type docCommand struct {
	where string // file:line
	text  string // as written, continuations joined
	// output is what a console block shows after the command; nil for
	// other blocks, where only the exit status counts.
	output *string
}

// docCommands extracts the image-swapper command lines of the code blocks
// of path: those of sh-like blocks, and the "$ " lines of console blocks
// with the output shown below them. A command is an image-swapper one when
// a stage of its pipeline starts with image-swapper or go run
// ./cmd/image-swapper.
func docCommands(t *testing.T, root, path string) []docCommand {
	t.Helper()
	rel, _ := filepath.Rel(root, path)
	var out []docCommand
	for _, b := range fencedBlocks(t, path) {
		switch b.info {
		case "yaml", "json", "text", "promql":
			continue
		}
		console := b.info == "console"
		for i := 0; i < len(b.lines); i++ {
			line := strings.TrimSpace(b.lines[i])
			start := b.start + i
			if console {
				if !strings.HasPrefix(line, "$ ") {
					continue
				}
				line = strings.TrimPrefix(line, "$ ")
			}
			for strings.HasSuffix(line, `\`) && i+1 < len(b.lines) {
				i++
				next := strings.TrimSpace(b.lines[i])
				if strings.HasPrefix(next, "#") {
					// A commented-out option inside a continued command.
					next = `\`
				}
				line = strings.TrimSpace(strings.TrimSuffix(line, `\`)) + " " + next
			}
			line = oneLine(strings.TrimSuffix(line, `\`))
			if !isImageSwapperCommand(line) {
				continue
			}
			cmd := docCommand{where: fmt.Sprintf("%s:%d", rel, start), text: line}
			if console {
				var shown []string
				for i+1 < len(b.lines) && !strings.HasPrefix(strings.TrimSpace(b.lines[i+1]), "$ ") {
					i++
					shown = append(shown, b.lines[i])
				}
				s := strings.Join(shown, "\n")
				cmd.output = &s
			}
			out = append(out, cmd)
		}
	}
	return out
}

// oneLine drops a trailing comment (a "#" that starts a word) and
// collapses blanks, as the keys of docSkips are written.
func oneLine(line string) string {
	f := strings.Fields(line)
	if i := slices.IndexFunc(f, func(w string) bool { return strings.HasPrefix(w, "#") }); i >= 0 {
		f = f[:i]
	}
	return strings.Join(f, " ")
}

func isImageSwapperCommand(line string) bool {
	for stage := range strings.SplitSeq(line, "|") {
		f := strings.Fields(stage)
		switch {
		case len(f) >= 1 && f[0] == "image-swapper",
			len(f) >= 3 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/image-swapper":
			return true
		}
	}
	return false
}

// argv turns a documented command into image-swapper's arguments and the
// file it reads on stdin (after "<"), or says why it cannot run here.
func argv(text string) (args []string, stdin string, err error) {
	words, err := splitShell(text)
	if err != nil {
		return nil, "", err
	}
	for i, w := range words {
		if w.operator && w.text == "|" {
			return nil, "", fmt.Errorf("word %d: a pipeline needs its other commands", i+1)
		}
	}
	var plain []string
	for i := 0; i < len(words); i++ {
		if words[i].operator { // "<"
			if i+1 >= len(words) || words[i+1].operator {
				return nil, "", fmt.Errorf("%q: < needs a file", text)
			}
			stdin = words[i+1].text
			i++
			continue
		}
		plain = append(plain, words[i].text)
	}
	switch {
	case len(plain) >= 1 && plain[0] == "image-swapper":
		return plain[1:], stdin, nil
	case len(plain) >= 3 && plain[0] == "go" && plain[1] == "run" && plain[2] == "./cmd/image-swapper":
		return plain[3:], stdin, nil
	}
	return nil, "", fmt.Errorf("%q does not start with image-swapper", text)
}

// TestDocCommands runs every image-swapper command that the README and
// docs/*.md show in code blocks, in process, from a directory that holds
// the repository's files and docFixtures, and fails naming the document
// and line of one that fails or whose shown output differs.
func TestDocCommands(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)

	// The working directory: the repository's top-level entries as links,
	// so that examples/config.yaml and the like resolve as in a checkout,
	// plus the fixtures.
	work := t.TempDir()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range docFixtures(t, root) {
		if _, err := os.Lstat(filepath.Join(work, name)); err == nil {
			t.Fatalf("fixture %s would hide the repository's own", name)
		}
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(work)
	// No command shown may reach a cluster through the test machine's own
	// configuration.
	t.Setenv("KUBECONFIG", filepath.Join(work, "no-kubeconfig"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	used := map[string]bool{}
	ran := 0
	for _, doc := range docs {
		for _, c := range docCommands(t, root, doc) {
			t.Run(c.where, func(t *testing.T) {
				if why, ok := docSkips[c.text]; ok {
					used[c.text] = true
					t.Skipf("not run: %s\n  %s", why, c.text)
				}
				args, stdinFile, err := argv(c.text)
				if err != nil {
					t.Fatalf("%s: cannot run %q here (%v): make it runnable, or add it to docSkips with the reason", c.where, c.text, err)
				}
				stdin := ""
				if stdinFile != "" {
					data, err := os.ReadFile(stdinFile)
					if err != nil {
						t.Fatalf("%s: %v", c.where, err)
					}
					stdin = string(data)
				}
				// One buffer for both streams: the order a terminal shows.
				var combined bytes.Buffer
				code := run(args, strings.NewReader(stdin), &combined, &combined)
				if code != 0 {
					t.Fatalf("%s: %s\nexit status %d:\n%s", c.where, c.text, code, combined.String())
				}
				if c.output != nil {
					got := strings.TrimRight(combined.String(), "\n")
					if want := strings.TrimRight(*c.output, "\n"); got != want {
						t.Errorf("%s: %s\nprints:\n%s\nthe document shows:\n%s", c.where, c.text, got, want)
					}
				}
			})
			ran++
		}
	}
	if ran == 0 {
		t.Fatal("no image-swapper command found in README.md or docs/")
	}
	for text, why := range docSkips {
		if !used[text] {
			t.Errorf("docSkips lists a command no document shows (%s): %q", why, text)
		}
	}
}
