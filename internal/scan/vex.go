package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// OpenVEX statuses (https://github.com/openvex/spec, v0.2.0 and v0.0.1).
const (
	VEXNotAffected        = "not_affected"
	VEXAffected           = "affected"
	VEXFixed              = "fixed"
	VEXUnderInvestigation = "under_investigation"
)

var vexStatuses = []string{VEXNotAffected, VEXAffected, VEXFixed, VEXUnderInvestigation}

// VEX is a set of OpenVEX statements from one or more documents.
//
// A statement suppresses a finding when its vulnerability (name, @id or
// aliases) is the finding's id or one of its aliases, one of its products
// names the image, any subcomponents it lists include the finding's
// package, and its status is not_affected. When several statements speak
// of one finding, the newest (by timestamp, then by position) decides, as
// the spec says later statements override earlier ones.
type VEX struct {
	statements []vexStatement
}

type vexStatement struct {
	source    string // "FILE statements[3]"
	vulns     []string
	products  []vexProduct
	status    string
	reason    string // justification or impact statement
	timestamp time.Time
	order     int
}

type vexProduct struct {
	ids           []string // @id and identifiers.purl
	subcomponents []string // purls or ids; empty means the whole product
}

// vexDocument is the JSON form, accepting v0.2.0 (objects) and v0.0.1
// (strings) for vulnerability, products and subcomponents.
type vexDocument struct {
	Context    string `json:"@context"`
	ID         string `json:"@id"`
	Timestamp  string `json:"timestamp"`
	Statements []struct {
		Vulnerability   json.RawMessage   `json:"vulnerability"`
		Products        []json.RawMessage `json:"products"`
		Subcomponents   []json.RawMessage `json:"subcomponents"` // v0.0.1
		Status          string            `json:"status"`
		Justification   string            `json:"justification"`
		ImpactStatement string            `json:"impact_statement"`
		Timestamp       string            `json:"timestamp"`
	} `json:"statements"`
}

type vexComponent struct {
	ID          string `json:"@id"`
	Identifiers struct {
		PURL string `json:"purl"`
	} `json:"identifiers"`
	Subcomponents []json.RawMessage `json:"subcomponents"`
}

// LoadVEX reads OpenVEX documents. Errors name the file and the statement.
func LoadVEX(paths ...string) (*VEX, error) {
	v := &VEX{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading VEX document: %w", err)
		}
		if err := v.add(p, data); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// ParseVEX reads one OpenVEX document; name identifies it in errors and
// in Ignored.By.
func ParseVEX(name string, data []byte) (*VEX, error) {
	v := &VEX{}
	if err := v.add(name, data); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *VEX) add(name string, data []byte) error {
	var doc vexDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: not an OpenVEX document: %w", name, err)
	}
	if !strings.HasPrefix(doc.Context, "https://openvex.dev/ns") {
		return fmt.Errorf("%s: not an OpenVEX document: @context is %q, want https://openvex.dev/ns/v0.2.0", name, doc.Context)
	}
	docTime, _ := time.Parse(time.RFC3339, doc.Timestamp)
	for i, st := range doc.Statements {
		where := fmt.Sprintf("%s: statements[%d]", name, i)
		s := vexStatement{source: where, status: st.Status, order: len(v.statements)}
		if !slices.Contains(vexStatuses, st.Status) {
			return fmt.Errorf("%s: status %q is not one of %s", where, st.Status, strings.Join(vexStatuses, ", "))
		}
		s.reason = st.Justification
		if s.reason == "" {
			s.reason = st.ImpactStatement
		}
		s.timestamp = docTime
		if st.Timestamp != "" {
			t, err := time.Parse(time.RFC3339, st.Timestamp)
			if err != nil {
				return fmt.Errorf("%s: timestamp %q is not RFC 3339", where, st.Timestamp)
			}
			s.timestamp = t
		}
		vulns, err := vexVulnerability(st.Vulnerability)
		if err != nil {
			return fmt.Errorf("%s: vulnerability: %w", where, err)
		}
		s.vulns = vulns
		topSubs, err := vexIDs(st.Subcomponents)
		if err != nil {
			return fmt.Errorf("%s: subcomponents: %w", where, err)
		}
		for j, raw := range st.Products {
			c, err := vexComponentOf(raw)
			if err != nil {
				return fmt.Errorf("%s: products[%d]: %w", where, j, err)
			}
			p := vexProduct{ids: nonEmpty(c.ID, c.Identifiers.PURL)}
			if len(p.ids) == 0 {
				return fmt.Errorf("%s: products[%d]: has neither @id nor identifiers.purl", where, j)
			}
			subs, err := vexIDs(c.Subcomponents)
			if err != nil {
				return fmt.Errorf("%s: products[%d].subcomponents: %w", where, j, err)
			}
			p.subcomponents = append(subs, topSubs...)
			s.products = append(s.products, p)
		}
		if len(s.products) == 0 {
			return fmt.Errorf("%s: names no products", where)
		}
		v.statements = append(v.statements, s)
	}
	return nil
}

func vexVulnerability(raw json.RawMessage) ([]string, error) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		if name == "" {
			return nil, errors.New("empty")
		}
		return []string{name}, nil
	}
	var obj struct {
		Name    string   `json:"name"`
		ID      string   `json:"@id"`
		Aliases []string `json:"aliases"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("want a name or an object with name: %w", err)
	}
	ids := nonEmpty(append([]string{obj.Name, obj.ID}, obj.Aliases...)...)
	if len(ids) == 0 {
		return nil, errors.New("has no name, @id or aliases")
	}
	return ids, nil
}

func vexComponentOf(raw json.RawMessage) (vexComponent, error) {
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return vexComponent{ID: id}, nil
	}
	var c vexComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("want an @id string or a component object: %w", err)
	}
	return c, nil
}

func vexIDs(raws []json.RawMessage) ([]string, error) {
	var out []string
	for i, raw := range raws {
		c, err := vexComponentOf(raw)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, nonEmpty(c.ID, c.Identifiers.PURL)...)
	}
	return out, nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// suppresses returns the statement that decides f in image, when it says
// not_affected.
func (v *VEX) suppresses(f *Finding, image reference.Reference, spellings []string) (*vexStatement, bool) {
	if v == nil {
		return nil, false
	}
	var decider *vexStatement
	for i := range v.statements {
		s := &v.statements[i]
		if !s.namesVulnerability(f) || !s.namesProduct(f, image, spellings) {
			continue
		}
		if decider == nil || !s.timestamp.Before(decider.timestamp) {
			decider = s
		}
	}
	if decider == nil || decider.status != VEXNotAffected {
		return nil, false
	}
	return decider, true
}

func (s *vexStatement) namesVulnerability(f *Finding) bool {
	for _, id := range s.vulns {
		if strings.EqualFold(id, f.ID) || slices.ContainsFunc(f.Aliases, func(a string) bool { return strings.EqualFold(a, id) }) {
			return true
		}
	}
	return false
}

func (s *vexStatement) namesProduct(f *Finding, image reference.Reference, spellings []string) bool {
	for _, p := range s.products {
		if !slices.ContainsFunc(p.ids, func(id string) bool { return productNames(id, f, image, spellings) }) {
			continue
		}
		if len(p.subcomponents) == 0 {
			return true
		}
		if f.PURL != "" && slices.ContainsFunc(p.subcomponents, func(sub string) bool { return purlMatches(sub, f.PURL) }) {
			return true
		}
	}
	return false
}

// productNames reports whether a product id names the scanned image, or,
// for a package purl, the finding's package.
func productNames(id string, f *Finding, image reference.Reference, spellings []string) bool {
	switch {
	case strings.HasPrefix(id, "pkg:oci/"):
		return ociPurlNames(id, image)
	case strings.HasPrefix(id, "pkg:"):
		return f.PURL != "" && purlMatches(id, f.PURL)
	}
	// An image reference: as policy lists spell it, so "nginx@sha256:…"
	// names docker.io/library/nginx@sha256:…, and a digest, where given,
	// must be the image's.
	if strings.ContainsAny(id, "*?") {
		return false
	}
	return slices.Contains(spellings, reference.CanonicalPattern(id))
}

// ociPurlNames matches pkg:oci/NAME[@DIGEST][?repository_url=R&tag=T]
// (purl-spec's oci type) against an image.
func ociPurlNames(id string, image reference.Reference) bool {
	p, ok := parsePurl(id)
	if !ok {
		return false
	}
	if p.version != "" && p.version != image.Digest {
		return false
	}
	if tag := p.qualifiers.Get("tag"); tag != "" && tag != image.Tag {
		return false
	}
	if repo := p.qualifiers.Get("repository_url"); repo != "" {
		return reference.CanonicalPattern(repo) == reference.CanonicalPattern(image.Name())
	}
	last := image.Repository[strings.LastIndexByte(image.Repository, '/')+1:]
	return strings.EqualFold(p.name, last)
}

type purl struct {
	typ, namespace, name, version string
	qualifiers                    url.Values
}

// parsePurl splits pkg:type/namespace/name@version?qualifiers#subpath,
// unescaping each part.
func parsePurl(s string) (purl, bool) {
	rest, ok := strings.CutPrefix(s, "pkg:")
	if !ok {
		return purl{}, false
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	var p purl
	p.qualifiers, _ = url.ParseQuery(query)
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		p.version, rest = unescape(rest[at+1:]), rest[:at]
	}
	typ, path, ok := strings.Cut(rest, "/")
	if !ok || typ == "" {
		return purl{}, false
	}
	p.typ = strings.ToLower(typ)
	path = strings.Trim(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		p.namespace, path = unescape(path[:i]), path[i+1:]
	}
	p.name = unescape(path)
	return p, p.name != ""
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// purlMatches reports whether the VEX purl want names the package purl
// got: same type, namespace and name, and version when want has one.
// Qualifiers (arch, distro) are not compared: a VEX author names the
// package, a scanner adds where it found it.
func purlMatches(want, got string) bool {
	w, ok1 := parsePurl(want)
	g, ok2 := parsePurl(got)
	if !ok1 || !ok2 {
		return false
	}
	return w.typ == g.typ && strings.EqualFold(w.namespace, g.namespace) && strings.EqualFold(w.name, g.name) &&
		(w.version == "" || w.version == g.version)
}
