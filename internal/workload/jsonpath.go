package workload

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file implements the subset of JSONPath that kubectl and reimage users
// write to point at image fields: an optional {…} wrapper, an optional $,
// then fields (.name, ['name'], ["name"]), indexes ([N], [-N] from the end)
// and wildcards ([*], .*). Everything else (recursive descent, filters,
// slices, unions, range) is refused with an error naming the expression,
// rather than silently selecting nothing.

type stepKind uint8

const (
	stepField stepKind = iota
	stepIndex
	stepWildcard
)

type step struct {
	kind  stepKind
	name  string // stepField
	index int    // stepIndex
}

// jsonPath is a compiled expression.
type jsonPath struct {
	expr  string
	steps []step
}

// parseJSONPath compiles expr; errors say what is unsupported and where.
func parseJSONPath(expr string) (jsonPath, error) {
	s := strings.TrimSpace(expr)
	if strings.HasPrefix(s, "{") {
		if !strings.HasSuffix(s, "}") {
			return jsonPath{}, errors.New(`"{" without closing "}"`)
		}
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if strings.ContainsAny(s, "{}") {
		return jsonPath{}, errors.New("only one {…} expression is supported; {range} and templates are not")
	}
	s = strings.TrimPrefix(s, "$")
	if s == "" {
		return jsonPath{}, errors.New("the expression selects the whole object; expected a path to an image field such as .spec.image")
	}
	// kubectl's relaxed form: "spec.image" means ".spec.image".
	if s[0] != '.' && s[0] != '[' {
		s = "." + s
	}
	var steps []step
	for i := 0; i < len(s); {
		switch s[i] {
		case '.':
			i++
			switch {
			case i == len(s):
				return jsonPath{}, errors.New("trailing '.'; expected a field name")
			case s[i] == '.':
				return jsonPath{}, fmt.Errorf("recursive descent '..' at offset %d is not supported; write the full path", i-1)
			case s[i] == '*':
				steps = append(steps, step{kind: stepWildcard})
				i++
			case s[i] == '[':
				// ".['name']" is accepted as "['name']".
			default:
				name, n, err := scanDotName(s[i:])
				if err != nil {
					return jsonPath{}, fmt.Errorf("at offset %d: %w", i, err)
				}
				steps = append(steps, step{kind: stepField, name: name})
				i += n
			}
		case '[':
			st, n, err := scanBracket(s[i:])
			if err != nil {
				return jsonPath{}, fmt.Errorf("at offset %d: %w", i, err)
			}
			steps = append(steps, st)
			i += n
		default:
			return jsonPath{}, fmt.Errorf("unexpected %q at offset %d; expected '.' or '['", s[i], i)
		}
	}
	return jsonPath{expr: expr, steps: steps}, nil
}

// scanDotName reads a field name after '.', up to the next '.' or '['. A
// backslash escapes the next character, as kubectl allows for names with
// dots ("metadata.annotations.example\.com/image").
func scanDotName(s string) (string, int, error) {
	var b strings.Builder
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				return "", 0, errors.New("trailing backslash")
			}
			i++
			b.WriteByte(s[i])
		case c == '.' || c == '[':
			if b.Len() == 0 {
				return "", 0, errors.New("empty field name")
			}
			return b.String(), i, nil
		case strings.IndexByte(" \t\n\r()?@$'\",:*]", c) >= 0:
			return "", 0, fmt.Errorf("unexpected %q in a field name; filters, functions and unions are not supported", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), i, nil
}

// scanBracket reads "[*]", "[N]" or "['name']" at the start of s.
func scanBracket(s string) (step, int, error) {
	if len(s) < 2 {
		return step{}, 0, errors.New("unterminated '['")
	}
	switch c := s[1]; {
	case c == '*':
		if len(s) < 3 || s[2] != ']' {
			return step{}, 0, errors.New("expected ']' after '[*'")
		}
		return step{kind: stepWildcard}, 3, nil
	case c == '\'' || c == '"':
		var b strings.Builder
		for i := 2; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 == len(s) {
					return step{}, 0, errors.New("unterminated quoted field name")
				}
				i++
				b.WriteByte(s[i])
			case c:
				if i+1 == len(s) || s[i+1] != ']' {
					return step{}, 0, errors.New("expected ']' after quoted field name; unions are not supported")
				}
				return step{kind: stepField, name: b.String()}, i + 2, nil
			default:
				b.WriteByte(s[i])
			}
		}
		return step{}, 0, errors.New("unterminated quoted field name")
	case c == '-' || (c >= '0' && c <= '9'):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return step{}, 0, errors.New("unterminated '['")
		}
		inner := s[1:end]
		if strings.ContainsAny(inner, ":,") {
			return step{}, 0, fmt.Errorf("[%s]: slices and unions are not supported; use [N] or [*]", inner)
		}
		n, err := strconv.Atoi(inner)
		if err != nil {
			return step{}, 0, fmt.Errorf("[%s]: expected an index", inner)
		}
		return step{kind: stepIndex, index: n}, end + 1, nil
	case c == '?':
		return step{}, 0, errors.New("filter expressions [?(…)] are not supported")
	case c == ':':
		return step{}, 0, errors.New("slices are not supported; use [N] or [*]")
	default:
		return step{}, 0, fmt.Errorf("unexpected %q after '['; expected *, an index or a quoted field name", c)
	}
}

// lastFieldName returns the name of the last field step, which a document
// must contain for the path to select anything, and whether it is usable as
// a literal needle for the pre-check.
func (jp jsonPath) lastFieldName() (string, bool) {
	for i := len(jp.steps) - 1; i >= 0; i-- {
		if jp.steps[i].kind == stepField {
			name := jp.steps[i].name
			// A name that YAML could write differently (folded, or with ''
			// inside single quotes) cannot be searched for literally; names
			// behind escapes are caught by the backslash needle.
			if name == "" || strings.ContainsAny(name, " \t\r\n'") {
				return "", false
			}
			return name, true
		}
	}
	return "", false
}

// match is one node selected by a path.
type match struct {
	node   *yaml.Node
	parent *yaml.Node // mapping or sequence holding node
	key    *yaml.Node // key node when parent is a mapping
	path   string
}

// eval calls emit for every node that jp selects under n, in document
// order. prefix is the concrete path of n: "" for a document's object,
// "items[2]" for a List item.
func (jp jsonPath) eval(n *yaml.Node, prefix string, b *budget, emit func(match) error) error {
	return evalSteps(n, nil, nil, jp.steps, prefix, b, emit)
}

func evalSteps(n, parent, key *yaml.Node, steps []step, path string, b *budget, emit func(match) error) error {
	if err := b.spend(); err != nil {
		return err
	}
	n = resolve(n)
	if len(steps) == 0 {
		return emit(match{node: n, parent: parent, key: key, path: path})
	}
	st, rest := steps[0], steps[1:]
	switch st.kind {
	case stepField:
		m, k, v := lookup(n, st.name)
		if v != nil {
			return evalSteps(v, m, k, rest, joinField(path, st.name), b, emit)
		}
	case stepIndex:
		if n.Kind == yaml.SequenceNode {
			i := st.index
			if i < 0 {
				i += len(n.Content)
			}
			if i >= 0 && i < len(n.Content) {
				return evalSteps(n.Content[i], n, nil, rest, joinIndex(path, i), b, emit)
			}
		}
	case stepWildcard:
		switch n.Kind {
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if err := evalSteps(c, n, nil, rest, joinIndex(path, i), b, emit); err != nil {
					return err
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := resolve(n.Content[i])
				if k.Kind != yaml.ScalarNode || k.Value == "<<" {
					continue
				}
				if err := evalSteps(n.Content[i+1], n, k, rest, joinField(path, k.Value), b, emit); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// joinField appends a field to a concrete path, in bracket form when the
// name is not a simple identifier.
func joinField(path, name string) string {
	if isIdent(name) {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	return path + "['" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "']"
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
