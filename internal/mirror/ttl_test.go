package mirror

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPositiveTTLBoundsSwapsToADeletedImage deletes an image from the
// target after Present found it: with the default TTL it is believed
// present for 30s more (the trade-off of a presence cache), and with the
// cache off its deletion is seen at the next look.
func TestPositiveTTLBoundsSwapsToADeletedImage(t *testing.T) {
	if DefaultPositiveTTL != 30*time.Second {
		t.Fatalf("DefaultPositiveTTL = %v, want a short 30s", DefaultPositiveTTL)
	}
	cases := []struct {
		name string
		ttl  time.Duration
		// believed is how long the deleted image is still taken for present.
		believed time.Duration
	}{
		{"the default believes a deleted image for 30s", 0, 30 * time.Second},
		{"a negative TTL turns the cache off", -1, 0},
		{"a configured TTL is used", 2 * time.Second, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFixture(t, Options{PositiveTTL: c.ttl, Now: clock.Now})
			ref, digest := f.target.pushImage("docker.io/library/nginx:1.27")
			ctx := context.Background()
			if got, ok, err := f.svc.Present(ctx, ref); err != nil || !ok || got != digest {
				t.Fatalf("Present before the deletion = %q, %v, %v; want %s", got, ok, err, digest)
			}
			// The in-memory registry keeps tags and digests apart: delete both.
			for _, r := range []string{"docker.io/library/nginx:1.27", "docker.io/library/nginx@" + digest} {
				if err := remote.Delete(mustName(t, f.target.ref(r))); err != nil {
					t.Fatalf("deleting %s: %v", r, err)
				}
			}
			f.target.Reset()
			if c.believed > 0 {
				clock.advance(c.believed - time.Nanosecond)
				if _, ok, err := f.svc.Present(ctx, ref); err != nil || !ok {
					t.Errorf("Present just within the TTL = %v, %v; want the cached true", ok, err)
				}
				if n := f.target.count("HEAD manifest tag"); n != 0 {
					t.Errorf("Present within the TTL made %d HEADs, want 0", n)
				}
				clock.advance(time.Nanosecond)
			}
			if _, ok, err := f.svc.Present(ctx, ref); err != nil || ok {
				t.Errorf("Present once the TTL has passed = %v, %v; want false: the image is gone", ok, err)
			}
			if n := f.target.count("HEAD manifest tag"); n != 1 {
				t.Errorf("Present once the TTL has passed made %d HEADs, want 1", n)
			}
		})
	}
}
