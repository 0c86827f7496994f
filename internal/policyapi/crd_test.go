package policyapi

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// crdDir holds the CRD manifests the chart ships.
const crdDir = "../../deploy/helm/image-swapper/files/crds"

// jsonSchema is the part of a JSON schema the comparison reads.
type jsonSchema struct {
	Type                 string                 `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	Items                *jsonSchema            `json:"items"`
	AdditionalProperties *jsonSchema            `json:"additionalProperties"`
}

type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema *jsonSchema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func readCRD(t *testing.T, resource string) crd {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(crdDir, Group+"_"+resource+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c crd
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCRDSchemasMatchTypes keeps the hand-written CRD schemas and the Go
// types in step: every field of the types is in the schema with a
// matching type, and every property of the schema is a field.
func TestCRDSchemasMatchTypes(t *testing.T) {
	for _, tc := range []struct {
		resource, kind, scope string
		spec, status          reflect.Type
	}{
		{ImagePolicies.Resource, KindImagePolicy, "Namespaced", reflect.TypeFor[ImagePolicySpec](), reflect.TypeFor[Status]()},
		{ClusterImagePolicies.Resource, KindClusterImagePolicy, "Cluster", reflect.TypeFor[ClusterImagePolicySpec](), reflect.TypeFor[Status]()},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			c := readCRD(t, tc.resource)
			if c.Spec.Group != Group || c.Spec.Names.Kind != tc.kind || c.Spec.Names.Plural != tc.resource || c.Spec.Scope != tc.scope {
				t.Fatalf("CRD names %+v, group %s, scope %s", c.Spec.Names, c.Spec.Group, c.Spec.Scope)
			}
			if len(c.Spec.Versions) != 1 || c.Spec.Versions[0].Name != Version {
				t.Fatalf("versions %+v; want %s only", c.Spec.Versions, Version)
			}
			root := c.Spec.Versions[0].Schema.OpenAPIV3Schema
			compare(t, "spec", root.Properties["spec"], tc.spec)
			compare(t, "status", root.Properties["status"], tc.status)
		})
	}
}

func compare(t *testing.T, path string, s *jsonSchema, typ reflect.Type) {
	t.Helper()
	if s == nil {
		t.Errorf("%s: not in the schema", path)
		return
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean", reflect.Float64: "number",
		reflect.Int64: "integer", reflect.Int: "integer", reflect.Struct: "object",
		reflect.Slice: "array", reflect.Map: "object",
	}[typ.Kind()]
	if typ.String() == "v1.Time" {
		want = "string"
	}
	if s.Type != want {
		t.Errorf("%s: schema type %q, Go type %s (%q)", path, s.Type, typ, want)
		return
	}
	switch typ.Kind() {
	case reflect.Slice:
		compare(t, path+"[]", s.Items, typ.Elem())
	case reflect.Map:
		compare(t, path+"{}", s.AdditionalProperties, typ.Elem())
	case reflect.Struct:
		if typ.String() == "v1.Time" {
			return
		}
		fields := jsonFieldsOf(typ)
		for name, f := range fields {
			compare(t, path+"."+name, s.Properties[name], f)
		}
		for name := range s.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: in the schema, but %s has no such field", path, name, typ)
			}
		}
	}
}

func jsonFieldsOf(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && name == "" {
			for n, ft := range jsonFieldsOf(f.Type) {
				out[n] = ft
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func TestCRDsAreWhatTheChartShips(t *testing.T) {
	entries, err := os.ReadDir(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{Group + "_" + ClusterImagePolicies.Resource + ".yaml", Group + "_" + ImagePolicies.Resource + ".yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("%s holds %v; want %v", crdDir, names, want)
	}
}
