package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/image-swapper/image-swapper/internal/store/storetest"
)

// opener opens the same database again each time it is called.
type opener func(t *testing.T) Store

func sqliteOpener(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "state", "ledger.db")
	return func(t *testing.T) Store {
		s, err := OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func postgresOpener(t *testing.T) (opener, *storetest.Postgres) {
	pg := storetest.StartPostgres(t)
	return func(t *testing.T) Store {
		s, err := OpenPostgres(context.Background(), pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, pg
}

func TestSQLite(t *testing.T) { testSuite(t, sqliteOpener) }

func TestPostgres(t *testing.T) {
	testSuite(t, func(t *testing.T) opener { o, _ := postgresOpener(t); return o })
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func admission(i int) AdmissionRecord {
	return AdmissionRecord{
		Time:          t0.Add(time.Duration(i) * time.Second),
		UID:           "0b6e1c5a-6a43-4c0e-9a53-3f0c8e6a1d2" + string(rune('0'+i%10)),
		Operation:     "CREATE",
		Endpoint:      EndpointMutate,
		Namespace:     []string{"shop", "payments", "kube-public"}[i%3],
		Pod:           "web-7d9f-*",
		OwnerKind:     "ReplicaSet",
		OwnerName:     "web-7d9f",
		Container:     "app",
		ContainerKind: ContainerRegular,
		User:          "system:serviceaccount:kube-system:replicaset-controller",
		Image:         "nginx:1.27",
		Normalized:    "docker.io/library/nginx:1.27",
		Action:        "swap",
		Target:        "registry.example.com/mirror/library/nginx:1.27",
		Digest:        "sha256:" + strings.Repeat("ab", 32),
		Rule:          "default",
	}
}

func testSuite(t *testing.T, newOpener func(t *testing.T) opener) {
	ctx := context.Background()
	t.Run("admission records come back whole, newest first", func(t *testing.T) {
		s := newOpener(t)(t)
		var want []AdmissionRecord
		for i := range 6 {
			want = append(want, admission(i))
		}
		want[1].DryRun = true
		want[1].Fallback = true
		want[1].Violations = []Violation{{Rule: "policies.denyList[0]", Mode: "warn", Message: "denied by docker.io/*"}}
		want[2].UID = "not-a-uuid-15ch" // 15 characters: 16 with the marker
		want[3].UID = "request-7"
		want[4] = AdmissionRecord{Time: want[4].Time, UID: want[4].UID, Operation: "UPDATE", Endpoint: EndpointValidate, Image: "busybox", Action: "deny"}
		want[5].ContainerKind = ContainerInit
		want[5].Pod, want[5].OwnerKind, want[5].OwnerName = "standalone", "", ""
		if err := s.Write(ctx, &Batch{Admissions: want[:3]}); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, &Batch{Admissions: want[3:]}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Admissions(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d records, want %d", len(got), len(want))
		}
		for i := range want {
			if w := want[len(want)-1-i]; !reflect.DeepEqual(got[i], w) {
				t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], w)
			}
		}
	})
	t.Run("queries filter by time, namespace and image glob", func(t *testing.T) {
		s := newOpener(t)(t)
		var recs []AdmissionRecord
		for i := range 9 {
			recs = append(recs, admission(i))
		}
		recs[8].Image, recs[8].Normalized = "quay.io/prometheus/prometheus:v3", "quay.io/prometheus/prometheus:v3"
		if err := s.Write(ctx, &Batch{Admissions: recs}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			q    Query
			want int
		}{
			{"since keeps the last records", Query{Since: t0.Add(6 * time.Second)}, 3},
			{"namespace glob", Query{Namespace: "pay*"}, 3},
			{"image glob on the normalised name", Query{Image: "docker.io/library/*"}, 8},
			{"image glob on the name as written", Query{Image: "nginx:*"}, 8},
			{"namespace and image together", Query{Namespace: "kube-*", Image: "quay.io/**"}, 1},
			{"limit", Query{Limit: 2}, 2},
		} {
			got, err := s.Admissions(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%s: got %d records, want %d", tc.name, len(got), tc.want)
			}
		}
		if _, err := s.Admissions(ctx, Query{Namespace: "a b"}); err == nil || !strings.Contains(err.Error(), "namespace") {
			t.Errorf("a bad namespace glob gave %v, want an error naming it", err)
		}
	})
	t.Run("swapped images: distinct, since, no dry runs", func(t *testing.T) {
		s := newOpener(t)(t)
		var recs []AdmissionRecord
		for i := range 6 {
			recs = append(recs, admission(i))
		}
		recs[1].DryRun = true
		recs[1].Normalized, recs[1].Target = "docker.io/library/redis:7", "registry.example.com/mirror/library/redis:7"
		recs[2].Action, recs[2].Endpoint = "keep", EndpointValidate
		recs[3].Normalized, recs[3].Target = "quay.io/team/app:2", "registry.example.com/mirror/team/app:2"
		recs[0].Normalized, recs[0].Target = "ghcr.io/old/one:1", "registry.example.com/mirror/old/one:1"
		if err := s.Write(ctx, &Batch{Admissions: recs}); err != nil {
			t.Fatal(err)
		}
		got, err := s.SwappedImages(ctx, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := []SwappedImage{
			{Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Last: t0.Add(5 * time.Second)},
			{Source: "quay.io/team/app:2", Target: "registry.example.com/mirror/team/app:2", Last: t0.Add(3 * time.Second)},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SwappedImages =\n %+v\nwant\n %+v", got, want)
		}
	})
	t.Run("stale scans: the newest per manifest, of images in use", func(t *testing.T) {
		s := newOpener(t)(t)
		d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
		const mirror = "registry.example.com/mirror/library/nginx:1.27"
		recs := []AdmissionRecord{admission(5), admission(6), admission(0)}
		// A Pod that named a digest, and an old admission outside the window.
		recs[1].Image, recs[1].Normalized, recs[1].Action, recs[1].Target = "quay.io/team/app@"+d("c"), "quay.io/team/app@"+d("c"), "keep", "quay.io/team/app@"+d("c")
		recs[2].Normalized, recs[2].Target = "ghcr.io/old/one:1", "registry.example.com/mirror/old/one:1"
		dry := admission(7)
		dry.DryRun, dry.Normalized, dry.Target = true, "docker.io/library/redis:7", "registry.example.com/mirror/library/redis:7"
		recs = append(recs, dry)
		scan := func(at time.Duration, image, index, manifest string) ScanRecord {
			return ScanRecord{Time: t0.Add(at), Image: image, IndexDigest: index, ManifestDigest: manifest, Scanner: "trivy"}
		}
		scans := []ScanRecord{
			// The mirror's two platforms; amd64 rescanned since.
			scan(0, mirror+"@"+d("1"), d("1"), d("a")),
			scan(time.Second, mirror+"@"+d("1"), d("1"), d("b")),
			scan(time.Hour, mirror+"@"+d("1"), d("1"), d("a")),
			// By digest, as admitted.
			scan(2*time.Second, "quay.io/team/app@"+d("c"), d("c"), d("c")),
			// Admitted before the window, or only in a dry run.
			scan(3*time.Second, "registry.example.com/mirror/old/one:1@"+d("2"), d("2"), d("2")),
			scan(4*time.Second, "registry.example.com/mirror/library/redis:7@"+d("3"), d("3"), d("3")),
		}
		if err := s.Write(ctx, &Batch{Admissions: recs, Scans: scans}); err != nil {
			t.Fatal(err)
		}
		got, err := s.StaleScans(ctx, t0.Add(time.Minute), t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range got {
			keys = append(keys, r.ManifestDigest[7:8]+"@"+r.Time.Sub(t0).String())
		}
		if want := []string{"b@1s", "c@2s"}; !slices.Equal(keys, want) {
			t.Errorf("StaleScans = %q (manifest@age), want %q", keys, want)
		}
		if len(got) > 0 && (got[0].Image != mirror+"@"+d("1") || got[0].IndexDigest != d("1")) {
			t.Errorf("StaleScans[0] = %+v, want the mirror's index scan", got[0])
		}
		if got, err := s.StaleScans(ctx, t0.Add(2*time.Hour), t0.Add(time.Second)); err != nil || len(got) != 3 {
			t.Errorf("StaleScans before 2h = %d scans (%v), want 3 (amd64's newest too)", len(got), err)
		}
	})
	t.Run("a retried batch is written once", func(t *testing.T) {
		s := newOpener(t)(t)
		b := &Batch{Key: [16]byte{1, 2, 3}, Admissions: []AdmissionRecord{admission(1), admission(2)}}
		for range 3 {
			if err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Admissions(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("three writes of one batch left %d records, want 2", len(got))
		}
	})
	t.Run("copies, scans and gaps come back", func(t *testing.T) {
		s := newOpener(t)(t)
		cp := CopyRecord{Time: t0, Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27",
			Digest: "sha256:" + strings.Repeat("cd", 32), Platforms: []string{"linux/amd64", "linux/arm64"}, Bytes: 73_000_000,
			Duration: 2500 * time.Millisecond, Result: "copied"}
		failed := CopyRecord{Time: t0.Add(time.Second), Source: "docker.io/library/redis:7", Target: "registry.example.com/mirror/library/redis:7",
			Result: "failed", Error: "fetching manifest: 429 Too Many Requests"}
		report := []byte(`{"SchemaVersion":2,"Results":[{"Vulnerabilities":[` + strings.Repeat(`{"VulnerabilityID":"CVE-2024-0001"},`, 200) + `{}]}]}`)
		sc := ScanRecord{Time: t0, Image: "registry.example.com/mirror/library/nginx:1.27",
			IndexDigest: "sha256:" + strings.Repeat("cd", 32), ManifestDigest: "sha256:" + strings.Repeat("ef", 32),
			Scanner: "trivy", ScannerVersion: "0.74.0", DBTime: t0.Add(-time.Hour),
			Counts:   map[string]int{"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "LOW": 5, "UNKNOWN": 0},
			Findings: []Finding{{ID: "CVE-2024-0001", Package: "musl", InstalledVersion: "1.2.4-r0", FixedVersion: "1.2.4-r1", Severity: "CRITICAL", CVSS: 9.8, Status: "fixed"}, {ID: "CVE-2024-0002", Package: "zlib", InstalledVersion: "1.3", Severity: "HIGH", CVSS: 7.5, Status: "affected"}},
			Report:   report}
		older := sc
		older.Time, older.Findings, older.Report, older.ScannerVersion = t0.Add(-24*time.Hour), nil, nil, "0.73.0"
		gap := Gap{From: t0, To: t0.Add(3 * time.Second), Count: 42}
		if err := s.Write(ctx, &Batch{Copies: []CopyRecord{cp, failed}, Scans: []ScanRecord{older, sc}, Gaps: []Gap{gap}}); err != nil {
			t.Fatal(err)
		}
		copies, err := s.Copies(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []CopyRecord{failed, cp}; !reflect.DeepEqual(copies, want) {
			t.Errorf("copies:\n got %+v\nwant %+v", copies, want)
		}
		for _, d := range []string{sc.IndexDigest, sc.ManifestDigest} {
			got, err := s.LatestScan(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, sc) {
				t.Errorf("latest scan of %s:\n got %+v\nwant %+v", d, *got, sc)
			}
		}
		if _, err := s.LatestScan(ctx, "sha256:"+strings.Repeat("00", 32)); !errors.Is(err, ErrNotFound) {
			t.Errorf("scan of an unknown digest: got %v, want ErrNotFound", err)
		}
		scans, err := s.Scans(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(scans) != 2 || scans[0].ScannerVersion != "0.74.0" || scans[1].ScannerVersion != "0.73.0" || scans[0].Counts["LOW"] != 5 {
			t.Errorf("scans: got %+v, want the two scans newest first", scans)
		}
		gaps, err := s.Gaps(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []Gap{gap}; !reflect.DeepEqual(gaps, want) {
			t.Errorf("gaps: got %+v, want %+v", gaps, want)
		}
	})
	t.Run("prune deletes what is older than the cut", func(t *testing.T) {
		s := newOpener(t)(t)
		var recs []AdmissionRecord
		for i := range 10 {
			recs = append(recs, admission(i))
		}
		sc := ScanRecord{Time: t0, Image: "a", IndexDigest: "sha256:1", Findings: []Finding{{ID: "CVE-1"}}}
		if err := s.Write(ctx, &Batch{Admissions: recs, Scans: []ScanRecord{sc}, Gaps: []Gap{{From: t0, To: t0, Count: 1}}}); err != nil {
			t.Fatal(err)
		}
		n, err := s.Prune(ctx, t0.Add(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if n != 4+1+1 {
			t.Errorf("pruned %d records, want 6 (4 admissions, 1 scan, 1 gap)", n)
		}
		got, _ := s.Admissions(ctx, Query{})
		if len(got) != 6 || !got[5].Time.Equal(t0.Add(4*time.Second)) {
			t.Errorf("after pruning: %d records, oldest %v; want 6 from %v", len(got), got[len(got)-1].Time, t0.Add(4*time.Second))
		}
		if _, err := s.LatestScan(ctx, "sha256:1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("pruned scan: got %v, want ErrNotFound", err)
		}
	})
	t.Run("records survive reopening and the schema is current", func(t *testing.T) {
		open := newOpener(t)
		s := open(t)
		if err := s.Write(ctx, &Batch{Admissions: []AdmissionRecord{admission(1)}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open(t)
		if err := s.Write(ctx, &Batch{Admissions: []AdmissionRecord{admission(2)}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Admissions(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !reflect.DeepEqual(got[1], admission(1)) {
			t.Errorf("after reopening: %+v, want both records", got)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != knownVersion() {
			t.Errorf("schema version %d, %v; want %d", v, err, knownVersion())
		}
	})
}

// dirDigest hashes every file under dir, names and contents.
func dirDigest(t *testing.T, dir string) [32]byte {
	h := sha256.New()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &Batch{Admissions: []AdmissionRecord{admission(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.(*sqlStore).db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dirDigest(t, dir)
	_, err = OpenSQLite(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("opening a version 99 database: got %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, "version 99", "upgrade image-swapper"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if dirDigest(t, dir) != before {
		t.Error("refusing the database modified its directory")
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	open, pg := postgresOpener(t)
	s := open(t)
	if err := s.Write(ctx, &Batch{Admissions: []AdmissionRecord{admission(1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.(*sqlStore).db.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	before := pgState(t, s.(*sqlStore).db)
	_, err := OpenPostgres(ctx, pg.DSN())
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("opening a version 99 database: got %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "version 99") {
		t.Errorf("error %q does not give the version", err)
	}
	if after := pgState(t, s.(*sqlStore).db); after != before {
		t.Errorf("refusing the database changed it: %s, then %s", before, after)
	}
}

// pgState summarises the schema and row counts of a database.
func pgState(t *testing.T, db *sql.DB) string {
	var state string
	err := db.QueryRow(`SELECT string_agg(table_name || ':' || column_name || ':' || data_type, ',' ORDER BY table_name, ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'public'`).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	var n, v int
	if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM admissions), (SELECT MAX(version) FROM schema_migrations)`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	return state + ";" + strings.Repeat("a", n) + ";" + string(rune('0'+v%10))
}

func TestPostgresErrorsHideTheDSN(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsn := "postgres://ledger:s3cr3t-pw@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=2"
	_, err := OpenPostgres(ctx, dsn)
	if err == nil {
		t.Fatal("connecting to port 1 succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
	_, err = OpenPostgres(ctx, "host=127.0.0.1 port=notaport password=s3cr3t-pw")
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("a bad key=value DSN gave %v, want an error without the password", err)
	}
}

func TestUIDEncoding(t *testing.T) {
	for _, uid := range []string{"", "x", "0b6e1c5a-6a43-4c0e-9a53-3f0c8e6a1d20", "0B6E1C5A-6A43-4C0E-9A53-3F0C8E6A1D20", "exactly15chars!", "exactly16chars!!", "ünïcode"} {
		if got := decodeUID(encodeUID(uid)); got != uid {
			t.Errorf("uid %q came back as %q", uid, got)
		}
	}
	if n := len(encodeUID("0b6e1c5a-6a43-4c0e-9a53-3f0c8e6a1d20")); n != 16 {
		t.Errorf("a UUID takes %d bytes, want 16", n)
	}
}

func startBenchPostgres(b *testing.B) string {
	return storetest.StartPostgres(b).DSN()
}

func FuzzUID(f *testing.F) {
	for _, s := range []string{"", "0b6e1c5a-6a43-4c0e-9a53-3f0c8e6a1d20", "exactly15chars!", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uid string) {
		if !utf8.ValidString(uid) {
			return // kube uids are text; 0xFF marks non-UUIDs
		}
		if got := decodeUID(encodeUID(uid)); got != uid {
			t.Errorf("uid %q came back as %q", uid, got)
		}
	})
}
