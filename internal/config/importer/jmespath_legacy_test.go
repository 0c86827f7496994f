package importer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The hand-written JMESPath parser the importer used before it parsed
// with github.com/jmespath-community/go-jmespath. It is kept here, and
// only here, so that TestLibraryAndLegacyParserAgreeOnTheCorpus can show
// that both read the importer's corpus into the same tree. Its one known
// deviation from JMESPath: it bound ! looser than == and !=.

// jpToken is a lexical token: kind is "ident", "quoted", "raw", "literal"
// or the punctuation itself.
type jpToken struct {
	kind, text string
}

// jpLex splits a JMESPath expression into tokens.
func jpLex(s string) ([]jpToken, error) {
	var out []jpToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || '0' <= s[j] && s[j] <= '9') {
				j++
			}
			out = append(out, jpToken{"ident", s[i:j]})
			i = j
		case c == '"':
			// A quoted identifier is a JSON string.
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated quoted identifier: %w", errJMESPath)
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, fmt.Errorf("bad quoted identifier %s: %w", s[i:j+1], errJMESPath)
			}
			out = append(out, jpToken{"quoted", v})
			i = j + 1
		case c == '\'':
			// A raw string: \' and \\ are the only escapes.
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '\'' || s[j+1] == '\\') {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string: %w", errJMESPath)
			}
			out = append(out, jpToken{"raw", b.String()})
			i = j + 1
		case c == '`':
			// A JSON literal; \` escapes a backtick.
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '`'; j++ {
				if s[j] == '\\' && j+1 < len(s) && s[j+1] == '`' {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated literal: %w", errJMESPath)
			}
			out = append(out, jpToken{"literal", b.String()})
			i = j + 1
		default:
			op := ""
			for _, p := range []string{"==", "!=", "&&", "||", "<=", ">=", ".", ",", "(", ")", "[", "]", "!", "<", ">"} {
				if strings.HasPrefix(s[i:], p) {
					op = p
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unexpected %q: %w", c, errJMESPath)
			}
			out = append(out, jpToken{op, op})
			i += len(op)
		}
	}
	return out, nil
}

// jpParser is a recursive-descent parser over the tokens, with JMESPath's
// precedence: || below && below ! below comparisons.
type jpParser struct {
	toks  []jpToken
	pos   int
	depth int
}

func legacyParseJMESPath(s string) (*jpNode, error) {
	toks, err := jpLex(s)
	if err != nil {
		return nil, err
	}
	p := &jpParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q: %w", p.toks[p.pos].text, errJMESPath)
	}
	return n, nil
}

func (p *jpParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].kind
	}
	return ""
}

func (p *jpParser) or() (*jpNode, error) {
	return p.binary("||", jpOr, p.and)
}

func (p *jpParser) and() (*jpNode, error) {
	return p.binary("&&", jpAnd, p.not)
}

func (p *jpParser) binary(op string, kind jpKind, next func() (*jpNode, error)) (*jpNode, error) {
	left, err := next()
	if err != nil {
		return nil, err
	}
	for p.peek() == op {
		p.pos++
		right, err := next()
		if err != nil {
			return nil, err
		}
		left = &jpNode{kind: kind, args: []*jpNode{left, right}}
	}
	return left, nil
}

func (p *jpParser) not() (*jpNode, error) {
	if p.peek() != "!" {
		return p.cmp()
	}
	p.pos++
	if p.depth++; p.depth > 100 {
		return nil, fmt.Errorf("nested too deeply: %w", errJMESPath)
	}
	defer func() { p.depth-- }()
	x, err := p.not()
	if err != nil {
		return nil, err
	}
	return &jpNode{kind: jpNot, args: []*jpNode{x}}, nil
}

func (p *jpParser) cmp() (*jpNode, error) {
	left, err := p.primary()
	if err != nil {
		return nil, err
	}
	switch op := p.peek(); op {
	case "==", "!=":
		p.pos++
		right, err := p.primary()
		if err != nil {
			return nil, err
		}
		return &jpNode{kind: jpCmp, str: op, args: []*jpNode{left, right}}, nil
	case "<", "<=", ">", ">=":
		return nil, fmt.Errorf("ordering comparison %s: %w", op, errJMESPath)
	}
	return left, nil
}

func (p *jpParser) primary() (*jpNode, error) {
	if p.depth++; p.depth > 100 {
		return nil, fmt.Errorf("nested too deeply: %w", errJMESPath)
	}
	defer func() { p.depth-- }()
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("unexpected end: %w", errJMESPath)
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case "(":
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing ')': %w", errJMESPath)
		}
		p.pos++
		return n, nil
	case "raw":
		return &jpNode{kind: jpString, str: t.text}, nil
	case "literal":
		var v any
		if err := json.Unmarshal([]byte(t.text), &v); err != nil {
			return nil, fmt.Errorf("literal `%s`: %w", t.text, errJMESPath)
		}
		switch v := v.(type) {
		case string:
			return &jpNode{kind: jpString, str: v}, nil
		case bool:
			return &jpNode{kind: jpBool, b: v}, nil
		}
		return nil, fmt.Errorf("literal `%s`: %w", t.text, errJMESPath)
	case "[":
		n := &jpNode{kind: jpList}
		for {
			e, err := p.primary()
			if err != nil {
				return nil, err
			}
			if e.kind != jpString {
				return nil, fmt.Errorf("a list of other than strings: %w", errJMESPath)
			}
			n.args = append(n.args, e)
			switch p.peek() {
			case ",":
				p.pos++
				continue
			case "]":
				p.pos++
				return n, nil
			}
			return nil, fmt.Errorf("missing ']': %w", errJMESPath)
		}
	case "ident", "quoted":
		if t.kind == "ident" && p.peek() == "(" {
			return p.call(t.text)
		}
		n := &jpNode{kind: jpField, path: []string{t.text}}
		for p.peek() == "." {
			p.pos++
			if p.pos >= len(p.toks) || p.toks[p.pos].kind != "ident" && p.toks[p.pos].kind != "quoted" {
				return nil, fmt.Errorf("a '.' not followed by a name: %w", errJMESPath)
			}
			n.path = append(n.path, p.toks[p.pos].text)
			p.pos++
		}
		return n, nil
	}
	return nil, fmt.Errorf("unexpected %q: %w", t.text, errJMESPath)
}

func (p *jpParser) call(name string) (*jpNode, error) {
	p.pos++ // '('
	n := &jpNode{kind: jpCall, str: name}
	if p.peek() == ")" {
		p.pos++
		return n, nil
	}
	for {
		a, err := p.or()
		if err != nil {
			return nil, err
		}
		n.args = append(n.args, a)
		switch p.peek() {
		case ",":
			p.pos++
			continue
		case ")":
			p.pos++
			return n, nil
		}
		return nil, fmt.Errorf("missing ')' after the arguments of %s: %w", name, errJMESPath)
	}
}
