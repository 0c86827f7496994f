package main

import (
	"fmt"
	"strings"
	"testing"
)

// shellWord is one word of a command line, or an operator (|, <).
type shellWord struct {
	text     string
	operator bool
}

// splitShell splits a command line as a POSIX shell would for the simple
// commands the docs show: words, single and double quotes, backslashes,
// and the operators | and <. Anything that needs a real shell (variables,
// command substitution, other redirections, ;, &, globs aside) is an
// error naming it, so that the docs test lists such a command instead of
// running it wrongly.
func splitShell(line string) ([]shellWord, error) {
	var words []shellWord
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, shellWord{text: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("column %d: a backslash ends the line", i+1)
			}
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("column %d: unterminated single quote", i+1)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				switch line[i] {
				case '\\':
					if i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
						i++
					}
				case '$', '`':
					return nil, fmt.Errorf("column %d: %q inside double quotes needs a shell", i+1, string(line[i]))
				}
				if i < len(line) {
					cur.WriteByte(line[i])
				}
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case c == '|' || c == '<':
			flush()
			words = append(words, shellWord{text: string(c), operator: true})
		case strings.IndexByte("$`;&>(){}*?[#~", c) >= 0 && !(c == '#' && inWord) && !(c == '~' && inWord):
			if c == '#' {
				return words, nil // a comment ends the line
			}
			return nil, fmt.Errorf("column %d: %q needs a shell", i+1, string(c))
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// shellQuote quotes s for splitShell (and a POSIX shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func TestSplitShell(t *testing.T) {
	cases := []struct {
		name string
		line string
		want []string // operators as "|" and "<"
		err  string
	}{
		{"words split on blanks", "image-swapper  explain\t--config c.yaml", []string{"image-swapper", "explain", "--config", "c.yaml"}, ""},
		{"single quotes keep everything", `a 'b c' 'd"$e'`, []string{"a", "b c", `d"$e`}, ""},
		{"double quotes take escapes", `a "b \"c\" \\ d"`, []string{"a", `b "c" \ d`}, ""},
		{"quotes join a word", `--x='a b'c`, []string{"--x=a bc"}, ""},
		{"backslash escapes a blank", `a\ b`, []string{"a b"}, ""},
		{"pipes and input are operators", "cat f|image-swapper rewrite <in.yaml", []string{"cat", "f", "|", "image-swapper", "rewrite", "<", "in.yaml"}, ""},
		{"a comment ends the line", "image-swapper version # prints it", []string{"image-swapper", "version"}, ""},
		{"a hash inside a word is kept", "a#b", []string{"a#b"}, ""},
		{"variables need a shell", "image-swapper --config $CFG", nil, `"$" needs a shell`},
		{"command substitution needs a shell", `x "$(y)"`, nil, "needs a shell"},
		{"output redirection needs a shell", "image-swapper serve 2>log", nil, `">" needs a shell`},
		{"background needs a shell", "image-swapper serve &", nil, `"&" needs a shell`},
		{"an open quote is an error", "a 'b", nil, "unterminated single quote"},
		{"an open double quote is an error", `a "b`, nil, "unterminated double quote"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			words, err := splitShell(c.line)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("splitShell(%q) = %v, %v; want an error with %q", c.line, words, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range words {
				got = append(got, w.text)
			}
			if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
				t.Errorf("splitShell(%q) = %q, want %q", c.line, got, c.want)
			}
		})
	}
}

// FuzzSplitShell: splitting never panics, and words quoted back split to
// themselves.
func FuzzSplitShell(f *testing.F) {
	for _, s := range []string{"image-swapper explain --config c.yaml nginx", `a 'b c' "d \"e\""`, `a\ b|c<d`, "x # y", `"$x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := splitShell(line)
		if err != nil {
			return
		}
		quoted := make([]string, 0, len(words))
		for _, w := range words {
			if w.operator {
				quoted = append(quoted, w.text)
				continue
			}
			quoted = append(quoted, shellQuote(w.text))
		}
		again, err := splitShell(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting %q: %v", quoted, err)
		}
		if len(again) != len(words) {
			t.Fatalf("%q split to %v, re-quoted to %v", line, words, again)
		}
		for i := range words {
			if again[i] != words[i] {
				t.Fatalf("word %d: %+v became %+v", i, words[i], again[i])
			}
		}
	})
}
