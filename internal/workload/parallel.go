package workload

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// parseBatch is how many documents a worker claims at once: large enough to
// keep the shared counter cold, small enough to balance uneven documents.
const parseBatch = 16

// ParseAll parses docs with up to GOMAXPROCS workers. The result has one
// entry per document, in order; an entry is nil when its document failed,
// and the error joins every failure in document order.
func (l *Locator) ParseAll(docs []Document) ([]*Parsed, error) {
	out := make([]*Parsed, len(docs))
	errs := make([]error, len(docs))
	workers := min(runtime.GOMAXPROCS(0), (len(docs)+parseBatch-1)/parseBatch)
	if workers <= 1 {
		for i, d := range docs {
			out[i], errs[i] = l.Parse(d)
		}
		return out, errors.Join(errs...)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(parseBatch)) - parseBatch
				if lo >= len(docs) {
					return
				}
				for i := lo; i < min(lo+parseBatch, len(docs)); i++ {
					out[i], errs[i] = l.Parse(docs[i])
				}
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// ParseStream splits stream into documents and parses them all; see Split
// and ParseAll.
func (l *Locator) ParseStream(stream []byte) ([]*Parsed, error) {
	return l.ParseAll(Split(stream))
}
