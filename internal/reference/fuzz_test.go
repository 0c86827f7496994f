package reference

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors are *Error, and
// that every accepted reference is a fixed point: String() parses back to the
// same Reference, so normalising twice changes nothing.
func FuzzParse(f *testing.F) {
	for _, tc := range goldenCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || perr.Input != s || perr.Reason == "" {
				t.Fatalf("Parse(%q) error %#v is not an *Error naming the input with a reason", s, err)
			}
			return
		}
		if r.Registry == "" || r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: registry, repository and a tag or digest must be set", s, r)
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse again: %v", s, r.String(), err)
		}
		if again != r {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", s, r, r.String(), again)
		}
		if safe := PathSafeRegistry(r.Registry); safe == "" || checkComponent(safe) != "" {
			t.Fatalf("PathSafeRegistry(%q) = %q, not a valid path component: %s", r.Registry, safe, checkComponent(safe))
		}
	})
}
