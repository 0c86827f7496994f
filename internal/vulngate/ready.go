package vulngate

import (
	"time"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Ready reports whether Lookup would answer for image from memory at
// once: its digest (as written, or a tag resolved within the tag TTL),
// its platforms and every platform's findings are known here. The webhook
// judges such images in turn and starts goroutines only for the others.
func (g *Gate) Ready(image string) bool {
	ref, err := reference.Parse(image)
	if err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	digest := ref.Digest
	if digest == "" {
		e, ok := g.tags[ref.String()]
		if !ok || !time.Now().Before(e.expires) {
			return false
		}
		digest = e.digest
	}
	info, ok := g.indexes[digest]
	if !ok {
		return false
	}
	for _, m := range info.manifests {
		if g.known[m.Digest] == nil {
			return false
		}
	}
	return true
}
