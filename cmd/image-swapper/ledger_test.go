package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/image-swapper/image-swapper/internal/store"
)

func TestMirrorRecordsCopiesWithAStoreSection(t *testing.T) {
	s := newMirrorSetup(t)
	db := filepath.Join(t.TempDir(), "state.db")
	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.config, append(cfg, []byte("store:\n  path: "+db+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	digest := s.src.PushIndex(t, "team/app:1.0", 1, "linux/amd64", "linux/arm64")
	for range 2 {
		if code, out, errOut := runCLI(t, "", "mirror", "--config", s.config, s.src.Ref("team/app:1.0")); code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	}
	st, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	copies, err := st.Copies(context.Background(), store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 2 || copies[1].Result != "copied" || copies[0].Result != "present" || copies[1].Digest != digest || copies[1].Source != s.src.Ref("team/app:1.0") {
		t.Errorf("copy records %+v; want a copy of digest %s, then a present", copies, digest)
	}
}
