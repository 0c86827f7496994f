// Package workload finds the image references in Kubernetes manifests and
// rewrites them in place.
//
// Split cuts a YAML stream into documents without copying it; a Locator
// parses a document and lists its image fields (pod specs of the built-in
// workload kinds, List items, and JSONPaths configured for custom kinds);
// Parsed.Rewrite replaces chosen images and returns the document's bytes.
//
// Rewriting is byte-preserving: a document without a change comes back as
// its own Raw slice, and a changed document differs only in the bytes of
// the changed scalars. The exact span of each scalar is found from the YAML
// parser's line and column (columns count characters, lines count every
// YAML line break) and checked against the parsed value before anything is
// replaced, so a span that cannot be found exactly is an error, never a
// corrupted document. Block scalars (| and >) holding an image are rewritten
// as double-quoted scalars; see Parsed.Rewrite for quoting and anchors.
//
// Two pre-checks keep the YAML parser away from documents that cannot hold
// an image, which is most of a large stream: a document is not parsed when
// it has no "image" text (nor any custom path's last field name, nor a
// backslash escape that could spell one), or when it is block-style YAML
// whose top-level kind, read line by line by a reader that refuses anything
// it cannot read with certainty, is a kind without images (a CRD, a
// ConfigMap). Documents in the plain block style that Helm renders are read
// by a small line-based parser that builds the same tree as the YAML parser
// several times faster and leaves anything it cannot read exactly (anchors,
// tags, folded or multi-line scalars, JSON) to the YAML parser; tests and
// fuzzing compare the two. Documents are parsed in parallel by ParseAll.
package workload
