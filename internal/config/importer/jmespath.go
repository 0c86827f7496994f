package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jmespath-community/go-jmespath/pkg/parsing"
)

// k8s-image-swapper skips a container when one of its source.filters, a
// JMESPath expression over {obj: <Pod>, container: <Container>}, evaluates
// to true (pkg/webhook/image_swapper.go, filterMatch). JMESPath does not
// translate in general; this file reads the subset its documentation and
// users write — comparisons, &&, ||, !, contains, starts_with, ends_with
// over the namespace, the Pod's name, labels and annotations and the
// container's image — so that it can become namespace exclusions, a
// namespace selector or a CEL condition.

// jpKind is the kind of a parsed JMESPath node.
type jpKind int

const (
	jpField  jpKind = iota // a.b."c"
	jpString               // 'raw string' or a JSON string literal
	jpBool                 // `true` / `false`
	jpList                 // ['a', 'b']
	jpNot                  // !x
	jpAnd                  // x && y
	jpOr                   // x || y
	jpCmp                  // x == y, x != y
	jpCall                 // f(x, y)
)

// jpNode is a node of the parsed expression.
type jpNode struct {
	kind jpKind
	path []string // jpField
	str  string   // jpString; jpCmp's operator; jpCall's function
	b    bool     // jpBool
	args []*jpNode
}

var errJMESPath = errors.New("outside the JMESPath subset the importer reads")

// maxFilterDepth bounds how deeply a filter may nest; real filters nest a
// few levels, and the bound keeps the translation's recursion small.
const maxFilterDepth = 100

// parseJMESPath parses a filter with go-jmespath (the jmespath-community
// fork, whose parse tree is exported) and reads the tree into a jpNode,
// refusing what the translation does not know. Precedence is JMESPath's:
// ! binds tighter than == and !=, which bind tighter than && and then ||.
func parseJMESPath(s string) (n *jpNode, err error) {
	defer func() {
		// go-jmespath v1.1.1's lexer indexes out of range on U+0080 after
		// an identifier ("A\u0080"); a filter it cannot read is refused,
		// not a crash of the import.
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("not valid JMESPath (the parser failed: %v): %w", r, errJMESPath)
		}
	}()
	ast, err := parsing.NewParser().Parse(s)
	if err != nil {
		// The library's SyntaxError already says what and where.
		return nil, fmt.Errorf("not valid JMESPath (%v): %w", err, errJMESPath)
	}
	return fromAST(ast, 0)
}

// fromAST reads one node of the library's parse tree.
func fromAST(n parsing.ASTNode, depth int) (*jpNode, error) {
	if depth > maxFilterDepth {
		return nil, fmt.Errorf("nested too deeply: %w", errJMESPath)
	}
	children := func() ([]*jpNode, error) {
		out := make([]*jpNode, 0, len(n.Children))
		for _, c := range n.Children {
			x, err := fromAST(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	switch n.NodeType {
	case parsing.ASTField:
		name, _ := n.Value.(string)
		return &jpNode{kind: jpField, path: []string{name}}, nil
	case parsing.ASTSubexpression:
		// a.b.c is Subexpression(Subexpression(a, b), c).
		args, err := children()
		if err != nil {
			return nil, err
		}
		if len(args) != 2 || args[0].kind != jpField || args[1].kind != jpField {
			return nil, fmt.Errorf("a '.' not followed by a name: %w", errJMESPath)
		}
		return &jpNode{kind: jpField, path: append(append([]string(nil), args[0].path...), args[1].path...)}, nil
	case parsing.ASTLiteral:
		return literal(n.Value)
	case parsing.ASTMultiSelectList:
		// ['a', 'b']: the only list the translation reads.
		args, err := children()
		if err != nil {
			return nil, err
		}
		for _, a := range args {
			if a.kind != jpString {
				return nil, fmt.Errorf("a list of other than strings: %w", errJMESPath)
			}
		}
		return &jpNode{kind: jpList, args: args}, nil
	case parsing.ASTNotExpression, parsing.ASTAndExpression, parsing.ASTOrExpression:
		args, err := children()
		if err != nil {
			return nil, err
		}
		kind := jpNot
		switch n.NodeType {
		case parsing.ASTAndExpression:
			kind = jpAnd
		case parsing.ASTOrExpression:
			kind = jpOr
		}
		return &jpNode{kind: kind, args: args}, nil
	case parsing.ASTComparator:
		tok, _ := n.Value.(parsing.TokType)
		op := map[parsing.TokType]string{parsing.TOKEQ: "==", parsing.TOKNE: "!=",
			parsing.TOKLT: "<", parsing.TOKLTE: "<=", parsing.TOKGT: ">", parsing.TOKGTE: ">="}[tok]
		if op != "==" && op != "!=" {
			return nil, fmt.Errorf("ordering comparison %s: %w", op, errJMESPath)
		}
		args, err := children()
		if err != nil {
			return nil, err
		}
		return &jpNode{kind: jpCmp, str: op, args: args}, nil
	case parsing.ASTFunctionExpression:
		name, _ := n.Value.(string)
		args, err := children()
		if err != nil {
			return nil, err
		}
		return &jpNode{kind: jpCall, str: name, args: args}, nil
	}
	return nil, fmt.Errorf("%s: %w", strings.TrimPrefix(fmt.Sprint(n.NodeType), "AST"), errJMESPath)
}

// literal reads a string, a boolean or a list of strings (`["a", "b"]`).
func literal(v any) (*jpNode, error) {
	switch v := v.(type) {
	case string:
		return &jpNode{kind: jpString, str: v}, nil
	case bool:
		return &jpNode{kind: jpBool, b: v}, nil
	case []any:
		n := &jpNode{kind: jpList}
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("a list of other than strings: %w", errJMESPath)
			}
			n.args = append(n.args, &jpNode{kind: jpString, str: s})
		}
		return n, nil
	}
	raw, _ := json.Marshal(v)
	return nil, fmt.Errorf("literal `%s`: %w", raw, errJMESPath)
}

// --- translation -------------------------------------------------------

// fieldKind classifies the fields the translation knows.
type fieldKind int

const (
	fieldUnknown    fieldKind = iota
	fieldNamespace            // obj.metadata.namespace, always set (filterMatch fills it in)
	fieldName                 // obj.metadata.name, may be unset on Pods (generateName)
	fieldLabel                // obj.metadata.labels.K
	fieldAnnotation           // obj.metadata.annotations.K
	fieldImage                // container.image
	fieldObjectKind           // obj.kind
)

func classifyField(path []string) (fieldKind, string) {
	p := strings.Join(path, "\x00")
	switch p {
	case "obj\x00metadata\x00namespace":
		return fieldNamespace, ""
	case "obj\x00metadata\x00name":
		return fieldName, ""
	case "container\x00image":
		return fieldImage, ""
	case "obj\x00kind":
		return fieldObjectKind, ""
	}
	if len(path) == 4 && path[0] == "obj" && path[1] == "metadata" {
		switch path[2] {
		case "labels":
			return fieldLabel, path[3]
		case "annotations":
			return fieldAnnotation, path[3]
		}
	}
	return fieldUnknown, ""
}

// filterPlan is what the filters translate to: a container is left alone
// when its namespace matches one of exclude, or its namespace is not in
// every one of the onlyIn sets, or one of skip (CEL) holds.
type filterPlan struct {
	exclude []string
	onlyIn  [][]string
	skip    []string
}

// translateFilter adds one filter to the plan. It returns notes on caveats,
// or an error when the filter cannot be translated (the plan is then left
// as it was).
func translateFilter(expr string, plan *filterPlan) (notes []string, err error) {
	n, err := parseJMESPath(expr)
	if err != nil {
		return nil, err
	}
	return translateTree(n, plan)
}

// translateTree adds one parsed filter to the plan, as translateFilter.
func translateTree(n *jpNode, plan *filterPlan) (notes []string, err error) {
	var exclude []string
	var onlyIn [][]string
	var skip []string
	for _, d := range disjuncts(n) {
		if vals, ok := nsEquality(d); ok {
			for _, v := range vals {
				if !validNamespace(v) {
					notes = append(notes, fmt.Sprintf("%q is not a namespace name, so that part never matches", v))
					continue
				}
				exclude = append(exclude, v)
			}
			continue
		}
		if vals, ok := nsEquality(negate(d)); ok {
			// "namespace != X": only X is processed.
			var valid []string
			for _, v := range vals {
				if validNamespace(v) {
					valid = append(valid, v)
				}
			}
			onlyIn = append(onlyIn, valid)
			continue
		}
		if pat, ok := nsPattern(d); ok {
			exclude = append(exclude, pat)
			continue
		}
		cel, cnotes, err := toCEL(d)
		if err != nil {
			return nil, err
		}
		notes = append(notes, cnotes...)
		skip = append(skip, cel)
	}
	plan.exclude = append(plan.exclude, exclude...)
	plan.onlyIn = append(plan.onlyIn, onlyIn...)
	plan.skip = append(plan.skip, skip...)
	return notes, nil
}

// disjuncts splits a top-level || into its parts: each part alone makes
// the filter skip the container, just as separate filters do.
func disjuncts(n *jpNode) []*jpNode {
	if n.kind == jpOr {
		return append(disjuncts(n.args[0]), disjuncts(n.args[1])...)
	}
	return []*jpNode{n}
}

// negate returns !n, folding a double negation and flipping comparisons.
func negate(n *jpNode) *jpNode {
	if n.kind == jpNot {
		return n.args[0]
	}
	if n.kind == jpCmp {
		c := *n
		c.str = map[string]string{"==": "!=", "!=": "=="}[n.str]
		return &c
	}
	return &jpNode{kind: jpNot, args: []*jpNode{n}}
}

// unwrapBool turns "x == `true`" into x and "x == `false`" into !x.
func unwrapBool(n *jpNode) *jpNode {
	if n.kind != jpCmp || n.args[1].kind != jpBool {
		return n
	}
	want := n.args[1].b
	if n.str == "!=" {
		want = !want
	}
	if want {
		return n.args[0]
	}
	return negate(n.args[0])
}

// nsEquality recognises "namespace == 'x'" (either way round) and
// "contains(['a', 'b'], namespace)", returning the namespaces.
func nsEquality(n *jpNode) ([]string, bool) {
	n = unwrapBool(n)
	switch n.kind {
	case jpCmp:
		if n.str != "==" {
			return nil, false
		}
		a, b := n.args[0], n.args[1]
		if a.kind == jpString {
			a, b = b, a
		}
		if a.kind == jpField && b.kind == jpString {
			if k, _ := classifyField(a.path); k == fieldNamespace {
				return []string{b.str}, true
			}
		}
	case jpCall:
		if n.str == "contains" && len(n.args) == 2 && n.args[0].kind == jpList && n.args[1].kind == jpField {
			if k, _ := classifyField(n.args[1].path); k == fieldNamespace {
				var out []string
				for _, e := range n.args[0].args {
					out = append(out, e.str)
				}
				return out, true
			}
		}
	}
	return nil, false
}

// nsPattern recognises starts_with, ends_with and contains over the
// namespace, which namespace wildcards express.
func nsPattern(n *jpNode) (string, bool) {
	n = unwrapBool(n)
	if n.kind != jpCall || len(n.args) != 2 || n.args[0].kind != jpField || n.args[1].kind != jpString {
		return "", false
	}
	if k, _ := classifyField(n.args[0].path); k != fieldNamespace {
		return "", false
	}
	lit := n.args[1].str
	if strings.ContainsAny(lit, "*?") || strings.Trim(lit, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return "", false
	}
	switch n.str {
	case "starts_with":
		return lit + "*", true
	case "ends_with":
		return "*" + lit, true
	case "contains":
		return "*" + lit + "*", true
	}
	return "", false
}

// validNamespace reports whether s can be a namespace name (a DNS label).
func validNamespace(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// toCEL translates a boolean JMESPath expression into CEL over the
// variables image-swapper's conditions see (rules.CompileCondition).
func toCEL(n *jpNode) (string, []string, error) {
	var notes []string
	s, err := celBool(n, &notes)
	return s, notes, err
}

func celBool(n *jpNode, notes *[]string) (string, error) {
	n = unwrapBool(n)
	switch n.kind {
	case jpNot:
		x, err := celBool(n.args[0], notes)
		if err != nil {
			return "", err
		}
		return "!(" + x + ")", nil
	case jpAnd, jpOr:
		a, err := celBool(n.args[0], notes)
		if err != nil {
			return "", err
		}
		b, err := celBool(n.args[1], notes)
		if err != nil {
			return "", err
		}
		op := " && "
		if n.kind == jpOr {
			op = " || "
		}
		return "(" + a + op + b + ")", nil
	case jpBool:
		return fmt.Sprint(n.b), nil
	case jpCmp:
		a, b := n.args[0], n.args[1]
		if a.kind == jpString {
			a, b = b, a
		}
		if a.kind != jpField || b.kind != jpString {
			return "", fmt.Errorf("a comparison other than field == 'string': %w", errJMESPath)
		}
		access, guard, err := celField(a, notes, b.str)
		if err != nil {
			return "", err
		}
		eq := access + " == " + celString(b.str)
		if guard != "" {
			eq = "(" + guard + " && " + eq + ")"
		}
		if n.str == "!=" {
			return "!" + wrap(eq), nil
		}
		return eq, nil
	case jpCall:
		return celCall(n, notes)
	}
	return "", fmt.Errorf("an expression that is not true or false: %w", errJMESPath)
}

func wrap(s string) string {
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		return s
	}
	return "(" + s + ")"
}

func celCall(n *jpNode, notes *[]string) (string, error) {
	if len(n.args) != 2 {
		return "", fmt.Errorf("function %s with %d arguments: %w", n.str, len(n.args), errJMESPath)
	}
	subject, arg := n.args[0], n.args[1]
	switch {
	case n.str == "contains" && subject.kind == jpList && arg.kind == jpField:
		access, guard, err := celField(arg, notes, "")
		if err != nil {
			return "", err
		}
		var items []string
		for _, e := range subject.args {
			items = append(items, celString(e.str))
		}
		in := access + " in [" + strings.Join(items, ", ") + "]"
		if guard != "" {
			in = "(" + guard + " && " + in + ")"
		}
		return in, nil
	case subject.kind == jpField && arg.kind == jpString:
		method := map[string]string{"contains": "contains", "starts_with": "startsWith", "ends_with": "endsWith"}[n.str]
		if method == "" {
			return "", fmt.Errorf("function %s: %w", n.str, errJMESPath)
		}
		access, guard, err := celField(subject, notes, n.str+":"+arg.str)
		if err != nil {
			return "", err
		}
		call := access + "." + method + "(" + celString(arg.str) + ")"
		if guard != "" {
			call = "(" + guard + " && " + call + ")"
		}
		return call, nil
	}
	return "", fmt.Errorf("function %s over these arguments: %w", n.str, errJMESPath)
}

// celField returns the CEL expression of a field and, for maps that may
// lack the key, a guard that must hold first (JMESPath gives null there,
// which equals no string). use describes how an image is compared, to say
// when normalisation makes a difference.
func celField(f *jpNode, notes *[]string, use string) (access, guard string, err error) {
	k, key := classifyField(f.path)
	switch k {
	case fieldNamespace:
		return "namespaceObject.name", "", nil
	case fieldName:
		return "object.name", "", nil
	case fieldObjectKind:
		return "object.kind", "", nil
	case fieldLabel:
		return "object.labels[" + celString(key) + "]", celString(key) + " in object.labels", nil
	case fieldAnnotation:
		return "object.annotations[" + celString(key) + "]", celString(key) + " in object.annotations", nil
	case fieldImage:
		if !normalisationSafe(use) {
			*notes = append(*notes, "container.image is compared as image-swapper normalises it (docker.io/library/nginx:latest for nginx), not as written")
		}
		return "image.reference", "", nil
	}
	return "", "", fmt.Errorf("the field %s: %w", strings.Join(f.path, "."), errJMESPath)
}

// normalisationSafe reports whether a test on the image as written and on
// its normalised form always agree: a prefix that names a registry other
// than Docker Hub, or a substring that does not reach into what
// normalisation adds or rewrites (docker.io/, library/, index., :latest)
// nor spans a separator.
func normalisationSafe(use string) bool {
	if lit, ok := strings.CutPrefix(use, "starts_with:"); ok {
		// A registry host other than Docker Hub's is kept as written.
		host, _, _ := strings.Cut(lit, "/")
		return strings.ContainsAny(host, ".:") && !strings.HasPrefix("index.docker.io", host) &&
			!strings.HasPrefix("docker.io", host) && !strings.HasPrefix(host, "docker.io") && !strings.HasPrefix(host, "index.docker.io")
	}
	lit, ok := strings.CutPrefix(use, "contains:")
	if !ok || lit == "" || strings.ContainsAny(lit, "/:@") {
		return false
	}
	for _, part := range []string{"docker.io", "index.docker.io/library/", "latest"} {
		if strings.Contains(part, lit) || strings.Contains(lit, part) {
			return false
		}
	}
	return true
}
