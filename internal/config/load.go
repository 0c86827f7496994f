package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Load reads, decodes and validates a configuration file. Every problem is
// reported, each prefixed with the path as given, the line and the key path:
//
//	config.yaml: line 7: rules[1].action: "Deny" is not one of swap, keep, deny
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates configuration YAML. name identifies the input
// in errors ("config.yaml"). The returned error joins one error per problem;
// errors.As finds the first *FieldError.
//
// Decoding is strict: unknown keys (with a suggestion for near misses),
// duplicate keys and values of the wrong type are errors with the key path
// and line. The YAML is read as YAML 1.2, so yes/no/on/off are strings, and
// a boolean key wants true or false.
func Parse(name string, data []byte) (*Config, error) {
	root, fe := parseDocument(data)
	if fe != nil {
		return nil, &fileError{name: name, err: fe}
	}

	d := &decoder{lines: map[string]int{}, budget: maxNodes}
	tree, _ := d.value(root, reflect.TypeFor[Config](), "")
	if d.budget < 0 {
		// Everything after the limit was skipped; other problems would
		// only be noise.
		return nil, &fileError{name: name, err: d.errs[len(d.errs)-1]}
	}

	var cfg Config
	if tree != nil {
		raw, err := json.Marshal(tree)
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			err = dec.Decode(&cfg)
		}
		if err != nil {
			// The walk above checked every value against the schema, so this
			// is a bug; still, report it rather than panic.
			d.errs.add("", "cannot decode the configuration: %v", err)
		}
	}

	all := d.errs
	if verr := cfg.validate(); len(verr) > 0 {
		for _, e := range verr {
			if d.covers(e.Path) {
				// The value was already reported as undecodable; its
				// absence would only be reported again.
				continue
			}
			e.Line = d.lineOf(e.Path)
			all = append(all, e)
		}
	}
	if len(all) > 0 {
		sort.SliceStable(all, func(i, j int) bool {
			// Problems without a line go last; the others in file order.
			li, lj := all[i].Line, all[j].Line
			if li == 0 || lj == 0 {
				return li != 0 && lj == 0
			}
			return li < lj
		})
		errs := make([]error, len(all))
		for i, e := range all {
			errs[i] = &fileError{name: name, err: e}
		}
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// parseDocument parses data as exactly one YAML document holding a mapping.
func parseDocument(data []byte) (*yaml.Node, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FieldError{Reason: "the file is empty; expected a YAML mapping with keys such as sourceRegistries and targetRegistry"}
		}
		return nil, &FieldError{Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	root := documentContent(&doc)
	if root == nil {
		return nil, &FieldError{Reason: "the file holds no configuration (only comments or null); expected a YAML mapping with keys such as sourceRegistries and targetRegistry"}
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &FieldError{Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		}
		if documentContent(&next) != nil {
			return nil, &FieldError{Line: next.Line, Reason: "a second YAML document starts here; a config file holds exactly one"}
		}
	}
	if root.Kind == yaml.AliasNode {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{Line: root.Line, Reason: fmt.Sprintf("the file holds %s; expected a YAML mapping with keys such as sourceRegistries and targetRegistry", describe(root))}
	}
	return root, nil
}

// documentContent returns the top node of a document, or nil when the
// document is empty or null.
func documentContent(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	return n
}

// maxNodes bounds the work of one decode: aliases can make a small file
// expand exponentially ("billion laughs").
const maxNodes = 1 << 18

var durationType = reflect.TypeFor[metav1.Duration]()

// decoder walks YAML nodes against the Go types of the schema, using the
// json tags as key names, and builds the equivalent JSON value. It does the
// checking sigs.k8s.io/yaml's strict mode cannot (key paths, lines,
// suggestions) and reads YAML 1.2 throughout, so that what was checked is
// exactly what is decoded.
type decoder struct {
	errs problems
	// lines maps key paths to the line of their value, to place the
	// problems Validate finds.
	lines map[string]int
	// bad holds the paths whose values could not be decoded.
	bad    []string
	budget int
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Line: n.Line, Reason: fmt.Sprintf(format, args...)})
	d.bad = append(d.bad, path)
}

// covers reports whether path is, or lies below, a value that failed to decode.
func (d *decoder) covers(path string) bool {
	for _, b := range d.bad {
		if path == b || strings.HasPrefix(path, b) && len(path) > len(b) && (path[len(b)] == '.' || path[len(b)] == '[') {
			return true
		}
	}
	return false
}

// lineOf returns the line of path's value, or of its nearest ancestor.
func (d *decoder) lineOf(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// value converts n, found at path, to a JSON value for type t. ok is false
// when n was reported as wrong; the value is then left out.
func (d *decoder) value(n *yaml.Node, t reflect.Type, path string) (v any, ok bool) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.fail(n, path, "the document is too large (more than %d values after expanding aliases)", maxNodes)
		}
		return nil, false
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.fail(n, path, "alias *%s names no anchor", n.Value)
			return nil, false
		}
		n = n.Alias
	}
	if _, seen := d.lines[path]; !seen {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true
	}
	if t == durationType {
		return d.duration(n, path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return d.value(n, t.Elem(), path)
	case reflect.Struct:
		return d.object(n, t, path)
	case reflect.Map:
		return d.mapping(n, t, path)
	case reflect.Slice:
		return d.list(n, t, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a string, got %s", describe(n))
			return nil, false
		}
		// A number or boolean where a string is wanted is taken as written
		// (a label value of true, a tag of 1.10), never reformatted.
		return n.Value, true
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return nil, false
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return nil, false
		}
		return b, true
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.fail(n, path, "expected a whole number, got %s", describe(n))
			return nil, false
		}
		i, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil {
			d.fail(n, path, "%s is not a whole number in range", n.Value)
			return nil, false
		}
		return i, true
	case reflect.Float64:
		// A number, written as 8.9 or 9; YAML's .inf and .nan are not
		// scores.
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" && n.ShortTag() != "!!float" {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return nil, false
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.fail(n, path, "%s is not a finite number", n.Value)
			return nil, false
		}
		return f, true
	}
	// The schema has no other kinds; a new field of another kind needs
	// a case above.
	d.fail(n, path, "cannot decode a value of Go type %s", t)
	return nil, false
}

func (d *decoder) duration(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.fail(n, path, "expected a duration such as 5s or 1500ms, got %s", describe(n))
		return nil, false
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		d.fail(n, path, "%q is not a duration such as 5s or 1500ms", n.Value)
		return nil, false
	}
	return n.Value, true
}

// object decodes a mapping into the fields of struct type t.
func (d *decoder) object(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	fields := jsonFields(t)
	out := make(map[string]any, len(n.Content)/2)
	d.pairs(n, path, func(key string, kn, vn *yaml.Node) {
		f, ok := fields[key]
		if !ok {
			reason := "unknown key"
			if s := suggest(key, fields); s != "" {
				reason += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.fail(kn, field(path, key), "%s", reason)
			return
		}
		if v, ok := d.value(vn, f.Type, field(path, key)); ok && v != nil {
			out[key] = v
		}
	})
	return out, true
}

// mapping decodes a mapping into a Go map with string keys.
func (d *decoder) mapping(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	out := make(map[string]any, len(n.Content)/2)
	d.pairs(n, path, func(key string, _, vn *yaml.Node) {
		v, ok := d.value(vn, t.Elem(), field(path, key))
		if !ok {
			return
		}
		if v == nil && t.Elem().Kind() == reflect.String {
			// "key:" with no value is an empty label value, as in kubectl.
			v = ""
		}
		out[key] = v
	})
	if len(out) == 0 {
		// An empty map means the same as none; nil keeps Configs comparable.
		return nil, true
	}
	return out, true
}

// pairs calls fn for each key of mapping n, after checking that keys are
// strings and unique.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(key string, kn, vn *yaml.Node)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.AliasNode && kn.Alias != nil {
			kn = kn.Alias
		}
		if kn.Kind != yaml.ScalarNode {
			d.fail(kn, path, "keys must be strings, got %s", describe(kn))
			continue
		}
		if kn.ShortTag() == "!!merge" {
			d.fail(kn, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		key := kn.Value
		if first, dup := seen[key]; dup {
			d.fail(kn, field(path, key), "duplicate key (first set on line %d)", first)
			continue
		}
		seen[key] = kn.Line
		fn(key, kn, vn)
	}
}

// list decodes a sequence into a slice.
func (d *decoder) list(n *yaml.Node, t reflect.Type, path string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return nil, false
	}
	out := make([]any, 0, len(n.Content))
	for i, en := range n.Content {
		v, ok := d.value(en, t.Elem(), index(path, i))
		if !ok {
			// Keep the position so that later elements keep their index.
			v = nil
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		// An empty list means the same as none; nil keeps Configs comparable.
		return nil, true
	}
	return out, true
}

// describe names a node's kind for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return fmt.Sprintf("the string %q", v)
	case "!!int", "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("the value %q (%s)", v, n.ShortTag())
}

// jsonField is one decodable field of a struct.
type jsonField struct {
	Name  string
	Index int
	Type  reflect.Type
}

// fieldCache holds jsonFields results by type; the schema is fixed, so it
// stays small.
var fieldCache sync.Map // reflect.Type -> map[string]jsonField

// jsonFields maps the JSON names of t's exported fields to the fields.
// The map is shared; callers must not modify it.
func jsonFields(t reflect.Type) map[string]jsonField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]jsonField)
	}
	out := make(map[string]jsonField, t.NumField())
	for _, f := range orderedFields(t) {
		out[f.Name] = f
	}
	fieldCache.Store(t, out)
	return out
}

// orderedFields lists t's JSON fields in declaration order.
func orderedFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, jsonField{Name: name, Index: i, Type: sf.Type})
	}
	return out
}

// suggest returns the known key closest to key, if it is close enough to
// be a typo: same letters in another case, or within an edit distance that
// grows with the key's length.
func suggest(key string, fields map[string]jsonField) string {
	best, bestDist := "", 0
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
		limit := 1 + min(len(name), len(key))/5
		dist := editDistance(strings.ToLower(key), strings.ToLower(name))
		if dist <= limit && (best == "" || dist < bestDist || dist == bestDist && name < best) {
			best, bestDist = name, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
