package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Marshal renders c as YAML, keys in the schema's order (the order of the
// documentation) rather than alphabetically, leaving out unset values. Parse
// reads the result back to an equal Config. Importers use it to write the
// configuration they translated.
func Marshal(c *Config) ([]byte, error) {
	// Going through JSON applies the types' own encoding (omitempty,
	// metav1.Duration as "5s"); the schema then restores the key order.
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	root := toNode(tree, reflect.TypeFor[Config]())
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return b.Bytes(), nil
}

// toNode builds the YAML node for a JSON value of Go type t.
func toNode(v any, t reflect.Type) *yaml.Node {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if t.Kind() == reflect.Struct {
			for _, f := range orderedFields(t) {
				fv, ok := v[f.Name]
				if !ok || fv == nil {
					continue
				}
				fn := toNode(fv, f.Type)
				if fn.Kind == yaml.MappingNode && len(fn.Content) == 0 && f.Type.Kind() == reflect.Struct {
					// An empty section; a pointer to an empty struct (a
					// selector matching everything) is kept as {}.
					continue
				}
				n.Content = append(n.Content, stringNode(f.Name), fn)
			}
			return n
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			n.Content = append(n.Content, stringNode(k), toNode(v[k], t.Elem()))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range v {
			n.Content = append(n.Content, toNode(e, t.Elem()))
		}
		return n
	case string:
		return stringNode(v)
	case bool:
		if v {
			return scalar("!!bool", "true")
		}
		return scalar("!!bool", "false")
	case json.Number:
		if strings.ContainsAny(v.String(), ".eE") {
			return scalar("!!float", v.String()) // security.scanning.maxCVSS
		}
		return scalar("!!int", v.String())
	case nil:
		return scalar("!!null", "null")
	}
	return scalar("!!str", fmt.Sprint(v))
}

// stringNode renders a string the way yaml.Marshal does, which also quotes
// what YAML 1.1 readers (kubectl, Helm) would take for a boolean or number:
// yes, on, 1:20.
func stringNode(s string) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		// Encoding a Go string does not fail; fall back to letting the
		// encoder choose a style.
		return scalar("!!str", s)
	}
	return &n
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
