package mirror

// TEMPORARY until registry.Retryable/RetryAfter exist. Remove before handing back.

import (
	"errors"
	"time"
)

type statusErr interface {
	HTTPStatus() int
	RetryAfterHint() (time.Duration, bool)
}

func retryable(err error) bool {
	var se statusErr
	if errors.As(err, &se) {
		s := se.HTTPStatus()
		return s >= 500 || s == 429 || s == 408
	}
	return false
}

func retryAfter(err error) (time.Duration, bool) {
	var se statusErr
	if errors.As(err, &se) {
		return se.RetryAfterHint()
	}
	return 0, false
}
