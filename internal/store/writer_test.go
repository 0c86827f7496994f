package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func uniqueAdmission(i int) AdmissionRecord {
	a := admission(i)
	a.UID = fmt.Sprintf("%08x-6a43-4c0e-9a53-3f0c8e6a1d20", i)
	a.Time = t0.Add(time.Duration(i) * time.Millisecond)
	return a
}

// waitFor polls cond; the test's own deadline bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countUIDs(t *testing.T, s Store) (total int, distinct int) {
	recs, err := s.Admissions(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.UID] = true
	}
	return len(recs), len(seen)
}

func TestWriterSurvivesPostgresRestart(t *testing.T) {
	open, pg := postgresOpener(t)
	s := open(t)
	w := NewWriter(s, WriterOptions{MaxQueue: 10_000, Interval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	const n = 3000
	for i := range n / 2 {
		w.Record(uniqueAdmission(i))
	}
	waitFor(t, "the first half to be written", func() bool { return w.Pending() == 0 })
	pg.Stop()
	for i := n / 2; i < n; i++ {
		w.Record(uniqueAdmission(i))
	}
	time.Sleep(300 * time.Millisecond) // some writes fail meanwhile
	if w.Pending() == 0 {
		t.Fatal("records were written while PostgreSQL was down")
	}
	pg.Start()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total, distinct := countUIDs(t, s)
	if total != n || distinct != n {
		t.Errorf("after the restart the ledger holds %d records (%d distinct), want %d once each", total, distinct, n)
	}
	if gaps, _ := s.Gaps(context.Background(), time.Time{}); len(gaps) != 0 {
		t.Errorf("gaps %+v, want none within the queue's bound", gaps)
	}
}

func TestWriterOverflowWritesAGap(t *testing.T) {
	open, pg := postgresOpener(t)
	s := open(t)
	pg.Stop()
	w := NewWriter(s, WriterOptions{MaxQueue: 100, Interval: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	start := time.Now()
	for i := range 250 {
		r := uniqueAdmission(i)
		r.Time = time.Time{}
		w.Record(r) // never blocks, though the store is down
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("250 records took %v to enqueue", d)
	}
	pg.Start()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total, _ := countUIDs(t, s)
	gaps, err := s.Gaps(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if total != 100 || len(gaps) != 1 || gaps[0].Count != 150 || gaps[0].From.After(gaps[0].To) {
		t.Errorf("got %d records and gaps %+v; want 100 records and one gap of 150", total, gaps)
	}
}

func TestWriterCloseFlushes(t *testing.T) {
	s := sqliteOpener(t)(t)
	w := NewWriter(s, WriterOptions{Interval: time.Hour})
	for i := range 2500 {
		w.Record(uniqueAdmission(i))
	}
	w.RecordCopy(CopyRecord{Time: t0, Source: "a", Target: "b", Result: "copied"})
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if total, _ := countUIDs(t, s); total != 2500 {
		t.Errorf("Close wrote %d admission records, want 2500", total)
	}
	if c, _ := s.Copies(context.Background(), Query{}); len(c) != 1 {
		t.Errorf("Close wrote %d copy records, want 1", len(c))
	}
}

func TestTwoWritersShareOnePostgres(t *testing.T) {
	open, _ := postgresOpener(t)
	s1, s2 := open(t), open(t)
	w1 := NewWriter(s1, WriterOptions{Interval: 10 * time.Millisecond, BatchSize: 200})
	w2 := NewWriter(s2, WriterOptions{Interval: 10 * time.Millisecond, BatchSize: 200})
	const n = 4000
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i += 2 {
			w1.Record(uniqueAdmission(i))
		}
		close(done)
	}()
	for i := 1; i < n; i += 2 {
		r := uniqueAdmission(i)
		r.Namespace = fmt.Sprintf("ns-%d", i%50) // new lookup rows from both writers
		w2.Record(r)
	}
	<-done
	if err := w1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total, distinct := countUIDs(t, s1)
	if total != n || distinct != n {
		t.Errorf("two writers left %d records (%d distinct), want %d", total, distinct, n)
	}
}

// BenchmarkWriteSQLite and BenchmarkWritePostgres write b.N admission
// records in batches of 1,000 through Store.Write.
func BenchmarkWriteSQLite(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchmarkWrite(b, s)
}

func BenchmarkWritePostgres(b *testing.B) {
	pg := startBenchPostgres(b)
	s, err := OpenPostgres(context.Background(), pg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchmarkWrite(b, s)
}

// realistic builds record i of a cluster of 200 namespaces, 2,000
// workloads and 500 images, three containers a request.
func realistic(i int) AdmissionRecord {
	w := i / 3 % 2000
	img := (w*7 + i%3) % 500
	return AdmissionRecord{
		Time:          t0.Add(time.Duration(i) * time.Millisecond),
		UID:           fmt.Sprintf("%08x-6a43-4c0e-9a53-%012x", i/3, i/3*7919),
		Operation:     "CREATE",
		Endpoint:      EndpointMutate,
		Namespace:     fmt.Sprintf("team-%d", w%200),
		Pod:           fmt.Sprintf("app-%d-5d8c7f9b*", w),
		OwnerKind:     "ReplicaSet",
		OwnerName:     fmt.Sprintf("app-%d-5d8c7f9b", w),
		Container:     []string{"app", "sidecar", "init-db"}[i%3],
		ContainerKind: []string{ContainerRegular, ContainerRegular, ContainerInit}[i%3],
		User:          "system:serviceaccount:kube-system:replicaset-controller",
		Image:         fmt.Sprintf("docker.io/org/image-%d:1.%d", img, img%10),
		Normalized:    fmt.Sprintf("docker.io/org/image-%d:1.%d", img, img%10),
		Action:        "swap",
		Target:        fmt.Sprintf("registry.example.com/mirror/org/image-%d:1.%d", img, img%10),
		Digest:        fmt.Sprintf("sha256:%064x", img),
		Rule:          "default",
	}
}

func benchmarkWrite(b *testing.B, s Store) {
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		batch := &Batch{Key: [16]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1}}
		for j := i; j < min(i+1000, b.N); j++ {
			batch.Admissions = append(batch.Admissions, realistic(j))
		}
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSQLiteBytesPerRecord writes b.N records and reports the file's
// size per record; run it with -benchtime 1000000x.
func BenchmarkSQLiteBytesPerRecord(b *testing.B) {
	path := filepath.Join(b.TempDir(), "ledger.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkWrite(b, s)
	b.StopTimer()
	s.Close() // checkpoints the WAL into the file
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size())/float64(b.N), "bytes/record")
}
