package report

import (
	"errors"
	"io"
)

// WriteHTML is not written yet.
func WriteHTML(io.Writer, *Report) error {
	return errors.New("-o html is not implemented yet")
}
