package registrye2e_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/registrytest"
	"github.com/image-swapper/image-swapper/internal/store"
	"github.com/image-swapper/image-swapper/internal/testenv"
)

// syncTag is one line of `sync -o json`.
type syncTag struct {
	Source, Target, Mirrored, Upstream, Outcome, Detail string
}

func runSync(t *testing.T, config string, args ...string) []syncTag {
	t.Helper()
	r := runSwapper(t, "", nil, append([]string{"sync", "--config", config, "-o", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("sync: %s", r)
	}
	var out []syncTag
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var tag syncTag
		if err := dec.Decode(&tag); err != nil {
			t.Fatalf("sync printed %q: %v", r.stdout, err)
		}
		out = append(out, tag)
	}
	return out
}

// TestSyncBetweenTwoDockerRegistries runs `image-swapper sync` against two
// Debian docker-registry processes, through counting proxies, with a ledger
// that says admission swapped the image.
func TestSyncBetweenTwoDockerRegistries(t *testing.T) {
	srcReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	dstReg := testenv.StartDockerRegistry(t, testenv.RegistryOptions{})
	src := registrytest.NewProxy(t, srcReg.Host)
	dst := registrytest.NewProxy(t, dstReg.Host)
	db := filepath.Join(t.TempDir(), "state.db")
	writeSyncConfig := func(policy string) string {
		return writeConfig(t, src.Host, dst.Host,
			map[string]any{src.Host: map[string]any{"insecure": true}, dst.Host: map[string]any{"insecure": true}},
			map[string]any{"store": map[string]any{"path": db}, "mirroring": map[string]any{"sync": map[string]any{"policy": policy}}})
	}
	follow, freeze := writeSyncConfig("follow"), writeSyncConfig("freeze")

	first := seedIndex(t, srcReg.Host+"/src/app:1.0", 2, "linux/amd64", "linux/arm64")
	source := src.Host + "/src/app:1.0"
	target := targetOf(dst.Host, src.Host, "src/app:1.0")
	if r := runSwapper(t, "", nil, "mirror", "--config", follow, source); r.code != 0 {
		t.Fatalf("mirror: %s", r)
	}
	// What serve records when it swaps the image.
	st, err := store.Open(context.Background(), &config.Store{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Write(context.Background(), &store.Batch{Admissions: []store.AdmissionRecord{{
		Time: time.Now(), UID: "5c0a2c11-0000-4000-8000-000000000001", Operation: "CREATE", Endpoint: store.EndpointMutate,
		Namespace: "shop", Pod: "web-*", Container: "app", ContainerKind: store.ContainerRegular,
		Image: source, Normalized: source, Action: "swap", Target: target, Rule: "default",
	}}})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	repo := func(ref string) string {
		path := ref[strings.Index(ref, "/"):]
		return "/v2" + path[:strings.LastIndex(path, ":")]
	}

	t.Run("an unchanged tag costs one manifest HEAD at each registry and writes nothing", func(t *testing.T) {
		src.Reset()
		dst.Reset()
		got := runSync(t, follow)
		if len(got) != 1 || got[0].Outcome != "current" || got[0].Mirrored != first.digest || got[0].Upstream != first.digest {
			t.Fatalf("sync = %+v, want one current tag at %s", got, first.digest)
		}
		if m := matching(src.Requests(), "/manifests/"); !slices.Equal(m, []string{"HEAD " + repo(source) + "/manifests/1.0"}) {
			t.Errorf("manifest requests at the source: %q, want one HEAD", m)
		}
		if m := matching(dst.Requests(), "/manifests/"); !slices.Equal(m, []string{"HEAD " + repo(target) + "/manifests/1.0"}) {
			t.Errorf("manifest requests at the target: %q, want one HEAD", m)
		}
		if w := writes(append(src.Requests(), dst.Requests()...)); len(w) > 0 {
			t.Errorf("an unchanged tag wrote %q", w)
		}
	})

	second := seedIndex(t, srcReg.Host+"/src/app:1.0", 2, "linux/amd64", "linux/arm64")
	t.Run("a tag re-pushed upstream: --dry-run says it would move, and copies nothing", func(t *testing.T) {
		dst.Reset()
		got := runSync(t, follow, "--dry-run")
		if len(got) != 1 || got[0].Outcome != "would-move" || got[0].Mirrored != first.digest || got[0].Upstream != second.digest {
			t.Fatalf("sync --dry-run = %+v, want would-move %s -> %s", got, first.digest, second.digest)
		}
		if w := writes(dst.Requests()); len(w) > 0 {
			t.Errorf("a dry run wrote %q", w)
		}
	})
	t.Run("freeze reports the drift and keeps the mirrored digest", func(t *testing.T) {
		dst.Reset()
		got := runSync(t, freeze)
		if len(got) != 1 || got[0].Outcome != "drift" || got[0].Upstream != second.digest {
			t.Fatalf("sync (freeze) = %+v, want drift to %s", got, second.digest)
		}
		if w := writes(dst.Requests()); len(w) > 0 {
			t.Errorf("freeze wrote %q", w)
		}
	})
	t.Run("follow copies the new digest, moves the tag and deletes nothing", func(t *testing.T) {
		dst.Reset()
		got := runSync(t, follow)
		if len(got) != 1 || got[0].Outcome != "moved" || got[0].Upstream != second.digest {
			t.Fatalf("sync = %+v, want moved to %s", got, second.digest)
		}
		checkMirrored(t, target, second, authn.Anonymous)
		for _, r := range dst.Requests() {
			if strings.HasPrefix(r, "DELETE ") {
				t.Errorf("sync deleted: %s", r)
			}
		}
		// The old index is still there, by digest, for Pods pinned to it.
		old, err := name.ParseReference(dstReg.Host+repo(target)[len("/v2"):]+"@"+first.digest, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(old); err != nil {
			t.Errorf("the old digest is gone from the mirror: %v", err)
		}
		// The copy is in the ledger.
		r := runSwapper(t, "", nil, "report", "--config", follow, "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, second.digest) {
			t.Errorf("the report does not show the synced copy of %s: %s", second.digest, r)
		}
	})
}
