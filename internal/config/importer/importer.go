// Package importer translates the configurations of other image swapping
// webhooks into image-swapper's: ImageSwap MAPS files
// (github.com/phenixblue/imageswap-webhook) and k8s-image-swapper config
// files (github.com/estahn/k8s-image-swapper).
//
// A translation is honest about what it could not carry over: every line of
// a MAPS file and every option of a k8s-image-swapper config either
// translates exactly, with nothing to say, or yields a Finding that says what
// differs and why. Output is deterministic: the same input gives the same
// configuration and the same findings, in the same order.
package importer

import (
	"sort"
	"strconv"
	"strings"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/rules"
)

// Finding is a line or option of the input that did not translate, or
// translated with a caveat, with why.
type Finding struct {
	// Line is the 1-based line of the input, or 0 when the finding is not
	// about one line (a note on the file as a whole).
	Line int
	// Input is the line as written (MAPS) or the key path of the option
	// (k8s-image-swapper); empty for a note on the file as a whole.
	Input string
	// Reason says what ImageSwap or k8s-image-swapper did, what the
	// translation does instead and, where it helps, what to do about it.
	Reason string

	// source names the kind of input in String: "MAPS" or "config".
	source string
}

// String renders the finding for a terminal, like a compiler diagnostic:
//
//	MAPS:7: `[REPLACE]ghcr.io/x*::harbor.local`: reason
//	config:12: `target.aws.role`: reason
//	MAPS: reason
func (f Finding) String() string {
	var b strings.Builder
	src := f.source
	if src == "" {
		src = "input"
	}
	b.WriteString(src)
	b.WriteByte(':')
	if f.Line > 0 {
		b.WriteString(strconv.Itoa(f.Line))
		b.WriteByte(':')
	}
	b.WriteByte(' ')
	if f.Input != "" {
		b.WriteByte('`')
		b.WriteString(f.Input)
		b.WriteString("`: ")
	}
	b.WriteString(f.Reason)
	return b.String()
}

// findings collects the findings of one translation.
type findings struct {
	source string
	list   []Finding
}

func (fs *findings) add(line int, input, reason string) {
	fs.list = append(fs.list, Finding{Line: line, Input: input, Reason: reason, source: fs.source})
}

// sorted returns the findings by line, notes on the whole file first; the
// findings of one line keep the order they were found in, and a finding
// that repeats another (two rules of one line, one reason) is dropped.
func (fs *findings) sorted() []Finding {
	out := make([]Finding, 0, len(fs.list))
	seen := map[Finding]bool{}
	for _, f := range fs.list {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// joinReasons turns several reasons about one input into one sentence
// list, so that each input line yields at most one finding per cause.
func joinReasons(reasons []string) string {
	return strings.Join(reasons, "; ")
}

// checkCompiles makes sure a translation loads: the configuration passes
// validation and its rules compile, which also checks target collisions,
// templates and CEL conditions.
func checkCompiles(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	_, err := rules.Compile(cfg)
	return err
}
