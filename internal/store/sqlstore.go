package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/image-swapper/image-swapper/internal/glob"
)

// sqlStore is the Store both drivers share; the dialect holds what differs.
type sqlStore struct {
	db    *sql.DB
	d     *dialect
	where string // names the database in errors, without secrets
	// redact removes secrets from driver errors.
	redact func(error) error

	mu sync.Mutex
	// cache maps lookup values to their ids, per table. Entries are added
	// only after the transaction that read them committed.
	cache map[string]map[string]int64
	// stmts are the prepared multi-row INSERTs, by row count and head.
	stmts map[string]*sql.Stmt
}

// maxCached bounds each lookup table's cache; a full cache starts over.
const maxCached = 100_000

func newSQLStore(db *sql.DB, d *dialect, where string, redact func(error) error) *sqlStore {
	if redact == nil {
		redact = func(err error) error { return err }
	}
	return &sqlStore{db: db, d: d, where: where, redact: redact, cache: map[string]map[string]int64{}, stmts: map[string]*sql.Stmt{}}
}

func (s *sqlStore) wrap(doing string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", s.where, doing, s.redact(err))
}

func (s *sqlStore) Close() error { return s.db.Close() }

func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	v, err := readVersion(ctx, s.db, s.d)
	return v, s.wrap("schema version", err)
}

// lookup tables, each with its unique key columns. Values of multi-column
// keys are joined with keySep.
type lookup struct {
	table string
	cols  []string
}

const keySep = "\x00"

var (
	lkNames      = lookup{"names", []string{"value"}}
	lkImages     = lookup{"images", []string{"ref"}}
	lkDigests    = lookup{"digests", []string{"digest"}}
	lkNamespaces = lookup{"namespaces", []string{"name"}}
	lkWorkloads  = lookup{"workloads", []string{"namespace", "owner_kind", "owner_name", "pod"}}
)

// interner resolves lookup values to ids within one transaction.
type interner struct {
	s     *sqlStore
	tx    *sql.Tx
	found map[string]map[string]int64
	want  map[string]map[string]struct{}
}

func (s *sqlStore) newInterner(tx *sql.Tx) *interner {
	return &interner{s: s, tx: tx, found: map[string]map[string]int64{}, want: map[string]map[string]struct{}{}}
}

// need notes a value to resolve; "" needs nothing (its id is 0).
func (in *interner) need(l lookup, v string) {
	if v == "" {
		return
	}
	in.s.mu.Lock()
	_, ok := in.s.cache[l.table][v]
	in.s.mu.Unlock()
	if ok {
		return
	}
	w := in.want[l.table]
	if w == nil {
		w = map[string]struct{}{}
		in.want[l.table] = w
	}
	w[v] = struct{}{}
}

// resolve upserts the needed values of l, in sorted order so that two
// writers lock rows in the same order and cannot deadlock.
func (in *interner) resolve(ctx context.Context, l lookup) error {
	vals := make([]string, 0, len(in.want[l.table]))
	for v := range in.want[l.table] {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	delete(in.want, l.table)
	found := in.found[l.table]
	if found == nil {
		found = map[string]int64{}
		in.found[l.table] = found
	}
	n := len(l.cols)
	per := min(500, in.s.d.maxParams/n)
	for len(vals) > 0 {
		chunk := vals[:min(per, len(vals))]
		vals = vals[len(chunk):]
		var q strings.Builder
		fmt.Fprintf(&q, "INSERT INTO %s (%s) VALUES ", l.table, strings.Join(l.cols, ", "))
		args := make([]any, 0, len(chunk)*n)
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
		for i, v := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(row)
			if n == 1 {
				args = append(args, v)
				continue
			}
			parts := strings.Split(v, keySep)
			for j, p := range parts {
				if j == 0 || j == 1 {
					// namespace and owner_kind are ids.
					args = append(args, parseID(p))
				} else {
					args = append(args, p)
				}
			}
		}
		// DO UPDATE (not DO NOTHING) so that RETURNING yields existing
		// rows too.
		fmt.Fprintf(&q, " ON CONFLICT (%s) DO UPDATE SET %s = excluded.%s RETURNING id, %s",
			strings.Join(l.cols, ", "), l.cols[n-1], l.cols[n-1], strings.Join(l.cols, ", "))
		rows, err := in.tx.QueryContext(ctx, in.s.d.rebind(q.String()), args...)
		if err != nil {
			return fmt.Errorf("storing %s: %w", l.table, err)
		}
		for rows.Next() {
			var id int64
			key := make([]any, n)
			dst := []any{&id}
			for j := range key {
				if n > 1 && j < 2 {
					key[j] = new(int64)
				} else {
					key[j] = new(string)
				}
				dst = append(dst, key[j])
			}
			if err := rows.Scan(dst...); err != nil {
				rows.Close()
				return fmt.Errorf("storing %s: %w", l.table, err)
			}
			parts := make([]string, n)
			for j, k := range key {
				switch k := k.(type) {
				case *int64:
					parts[j] = fmt.Sprint(*k)
				case *string:
					parts[j] = *k
				}
			}
			found[strings.Join(parts, keySep)] = id
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("storing %s: %w", l.table, err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("storing %s: %w", l.table, err)
		}
	}
	return nil
}

func parseID(s string) int64 {
	var n int64
	fmt.Sscan(s, &n)
	return n
}

// id returns the id of a value resolved or cached; 0 for "".
func (in *interner) id(l lookup, v string) int64 {
	if v == "" {
		return 0
	}
	if id, ok := in.found[l.table][v]; ok {
		return id
	}
	in.s.mu.Lock()
	defer in.s.mu.Unlock()
	return in.s.cache[l.table][v]
}

// commit copies what the transaction resolved into the store's cache.
func (in *interner) commit() {
	in.s.mu.Lock()
	defer in.s.mu.Unlock()
	for table, found := range in.found {
		c := in.s.cache[table]
		if c == nil || len(c)+len(found) > maxCached {
			c = make(map[string]int64, len(found))
			in.s.cache[table] = c
		}
		for k, v := range found {
			c[k] = v
		}
	}
}

func workloadKey(ns int64, kind int64, owner, pod string) string {
	return fmt.Sprint(ns) + keySep + fmt.Sprint(kind) + keySep + owner + keySep + pod
}

// Write implements Store.
func (s *sqlStore) Write(ctx context.Context, b *Batch) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("starting a transaction", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	now := time.Now().UnixMilli()
	if b.Key != ([16]byte{}) {
		res, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO batches (batch_key, at) VALUES (?, ?) ON CONFLICT DO NOTHING`), b.Key[:], now)
		if err != nil {
			return s.wrap("recording the batch", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.wrap("recording the batch", err)
		} else if n == 0 {
			// An earlier try committed.
			return tx.Rollback()
		}
	}
	in := s.newInterner(tx)
	if err := s.intern(ctx, in, b); err != nil {
		return s.wrap("writing records", err)
	}
	if err := s.insertAdmissions(ctx, tx, in, b.Admissions); err != nil {
		return s.wrap("writing admission records", err)
	}
	if err := s.insertCopies(ctx, tx, in, b.Copies); err != nil {
		return s.wrap("writing copy records", err)
	}
	for i := range b.Scans {
		if err := s.insertScan(ctx, tx, in, &b.Scans[i]); err != nil {
			return s.wrap("writing scan records", err)
		}
	}
	if err := s.insertGaps(ctx, tx, b.Gaps); err != nil {
		return s.wrap("writing gap records", err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("committing records", err)
	}
	in.commit()
	return nil
}

func (s *sqlStore) intern(ctx context.Context, in *interner, b *Batch) error {
	for i := range b.Admissions {
		a := &b.Admissions[i]
		for _, v := range []string{a.Operation, a.Endpoint, a.Container, a.ContainerKind, a.User, a.Action, a.Rule, a.OwnerKind} {
			in.need(lkNames, v)
		}
		for _, v := range []string{a.Image, a.Normalized, a.Target} {
			in.need(lkImages, v)
		}
		in.need(lkDigests, a.Digest)
		in.need(lkNamespaces, a.Namespace)
	}
	for i := range b.Copies {
		c := &b.Copies[i]
		in.need(lkImages, c.Source)
		in.need(lkImages, c.Target)
		in.need(lkDigests, c.Digest)
		in.need(lkNames, c.Result)
	}
	for i := range b.Scans {
		sc := &b.Scans[i]
		in.need(lkImages, sc.Image)
		in.need(lkDigests, sc.IndexDigest)
		in.need(lkDigests, sc.ManifestDigest)
		in.need(lkNames, sc.Scanner)
		in.need(lkNames, sc.ScannerVersion)
		for _, f := range sc.Findings {
			in.need(lkNames, f.ID)
			in.need(lkNames, f.Severity)
			in.need(lkNames, f.Status)
		}
	}
	for _, l := range []lookup{lkNames, lkImages, lkDigests, lkNamespaces} {
		if err := in.resolve(ctx, l); err != nil {
			return err
		}
	}
	// Workloads refer to namespaces and names, resolved above.
	for i := range b.Admissions {
		a := &b.Admissions[i]
		if a.Namespace == "" && a.Pod == "" && a.OwnerKind == "" && a.OwnerName == "" {
			continue
		}
		in.need(lkWorkloads, workloadKey(in.id(lkNamespaces, a.Namespace), in.id(lkNames, a.OwnerKind), a.OwnerName, a.Pod))
	}
	return in.resolve(ctx, lkWorkloads)
}

// insertSizes are the row counts of the multi-row INSERTs: a batch of
// the Writer's 1,000 records is one statement, and any other count a few.
var insertSizes = []int{1000, 250, 50, 10, 1}

// insertRows inserts rows of n columns with multi-row INSERTs of the
// insertSizes (fewer rows where the dialect's parameter bound says so), as
// many of each as fit. Their statements are prepared once per store and
// reused: parsing a fresh statement of 1,000 rows for every batch was a
// third of a write's CPU (docs/performance.md).
func (s *sqlStore) insertRows(ctx context.Context, tx *sql.Tx, head string, n int, rows [][]any) error {
	for _, size := range insertSizes {
		size = max(1, min(size, s.d.maxParams/n))
		if len(rows) < size {
			continue
		}
		stmt, err := s.insertStatement(ctx, head, n, size)
		if err != nil {
			return err
		}
		txStmt := tx.StmtContext(ctx, stmt)
		args := make([]any, 0, size*n)
		for len(rows) >= size {
			args = args[:0]
			for _, r := range rows[:size] {
				args = append(args, r...)
			}
			if _, err := txStmt.ExecContext(ctx, args...); err != nil {
				return err
			}
			rows = rows[size:]
		}
	}
	return nil
}

// insertStatement is the prepared INSERT of rows rows of n columns after
// head, prepared on first use.
func (s *sqlStore) insertStatement(ctx context.Context, head string, n, rows int) (*sql.Stmt, error) {
	key := fmt.Sprintf("%d\x00%s", rows, head)
	s.mu.Lock()
	stmt := s.stmts[key]
	s.mu.Unlock()
	if stmt != nil {
		return stmt, nil
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	var q strings.Builder
	q.WriteString(head)
	q.WriteString(" VALUES ")
	for i := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(row)
	}
	stmt, err := s.db.PrepareContext(ctx, s.d.rebind(q.String()))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.stmts[key]; cur != nil {
		stmt.Close()
		return cur, nil
	}
	s.stmts[key] = stmt
	return stmt, nil
}

const (
	flagDryRun   = 1
	flagFallback = 2
)

func (s *sqlStore) insertAdmissions(ctx context.Context, tx *sql.Tx, in *interner, recs []AdmissionRecord) error {
	rows := make([][]any, len(recs))
	for i := range recs {
		a := &recs[i]
		var flags int64
		if a.DryRun {
			flags |= flagDryRun
		}
		if a.Fallback {
			flags |= flagFallback
		}
		var workload int64
		if a.Namespace != "" || a.Pod != "" || a.OwnerKind != "" || a.OwnerName != "" {
			workload = in.id(lkWorkloads, workloadKey(in.id(lkNamespaces, a.Namespace), in.id(lkNames, a.OwnerKind), a.OwnerName, a.Pod))
		}
		var violations any
		if len(a.Violations) > 0 {
			v, err := json.Marshal(a.Violations)
			if err != nil {
				return err
			}
			violations = string(v)
		}
		rows[i] = []any{
			a.Time.UnixMilli(), encodeUID(a.UID),
			in.id(lkNames, a.Operation), in.id(lkNames, a.Endpoint), flags,
			workload, in.id(lkNames, a.Container), in.id(lkNames, a.ContainerKind), in.id(lkNames, a.User),
			in.id(lkImages, a.Image), in.id(lkImages, a.Normalized), in.id(lkNames, a.Action), in.id(lkImages, a.Target),
			in.id(lkDigests, a.Digest), in.id(lkNames, a.Rule), violations,
		}
	}
	return s.insertRows(ctx, tx, `INSERT INTO admissions (at, uid, operation, endpoint, flags, workload, container, container_kind, usr,
		image, normalized, action, target, digest, rule, violations)`, 16, rows)
}

func (s *sqlStore) insertCopies(ctx context.Context, tx *sql.Tx, in *interner, recs []CopyRecord) error {
	rows := make([][]any, len(recs))
	for i := range recs {
		c := &recs[i]
		rows[i] = []any{c.Time.UnixMilli(), in.id(lkImages, c.Source), in.id(lkImages, c.Target), in.id(lkDigests, c.Digest),
			strings.Join(c.Platforms, ","), c.Bytes, c.Duration.Milliseconds(), in.id(lkNames, c.Result), c.Error}
	}
	return s.insertRows(ctx, tx, `INSERT INTO copies (at, source, target, digest, platforms, bytes, duration_ms, result, error)`, 9, rows)
}

func (s *sqlStore) insertGaps(ctx context.Context, tx *sql.Tx, gaps []Gap) error {
	rows := make([][]any, len(gaps))
	for i, g := range gaps {
		rows[i] = []any{g.From.UnixMilli(), g.To.UnixMilli(), g.Count}
	}
	return s.insertRows(ctx, tx, `INSERT INTO gaps (at_from, at_to, lost)`, 3, rows)
}

func (s *sqlStore) insertScan(ctx context.Context, tx *sql.Tx, in *interner, sc *ScanRecord) error {
	var report []byte
	if len(sc.Report) > 0 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(sc.Report); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		report = buf.Bytes()
	}
	var dbAt int64
	if !sc.DBTime.IsZero() {
		dbAt = sc.DBTime.UnixMilli()
	}
	var id int64
	err := tx.QueryRowContext(ctx, s.d.rebind(`INSERT INTO scans (at, image, index_digest, manifest_digest, scanner, scanner_version, db_at,
		critical, high, medium, low, unknown, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		sc.Time.UnixMilli(), in.id(lkImages, sc.Image), in.id(lkDigests, sc.IndexDigest), in.id(lkDigests, sc.ManifestDigest),
		in.id(lkNames, sc.Scanner), in.id(lkNames, sc.ScannerVersion), dbAt,
		sc.Counts["CRITICAL"], sc.Counts["HIGH"], sc.Counts["MEDIUM"], sc.Counts["LOW"], sc.Counts["UNKNOWN"], report).Scan(&id)
	if err != nil {
		return err
	}
	rows := make([][]any, len(sc.Findings))
	for i, f := range sc.Findings {
		rows[i] = []any{id, i, in.id(lkNames, f.ID), f.Package, f.InstalledVersion, f.FixedVersion, in.id(lkNames, f.Severity), f.CVSS, in.id(lkNames, f.Status)}
	}
	return s.insertRows(ctx, tx, `INSERT INTO findings (scan, ord, vulnerability, package, installed, fixed, severity, cvss, status)`, 9, rows)
}

// encodeUID stores a UUID in its 16 bytes; any other uid as 0xFF, its
// text and, should that make 16 bytes, a second 0xFF (UTF-8 text never holds
// 0xFF, and only a UUID is 16 bytes long).
func encodeUID(uid string) []byte {
	if b, ok := parseUUID(uid); ok {
		return b
	}
	out := append([]byte{0xFF}, uid...)
	if len(out) == 16 {
		out = append(out, 0xFF)
	}
	return out
}

func decodeUID(b []byte) string {
	if len(b) == 16 {
		h := hex.EncodeToString(b)
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	b = bytes.TrimPrefix(b, []byte{0xFF})
	if len(b) == 16 {
		b = bytes.TrimSuffix(b, []byte{0xFF})
	}
	return string(b)
}

// parseUUID parses the canonical lower-case form only, so that decodeUID
// gives back exactly what was written.
func parseUUID(s string) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if strings.ToLower(h) != h {
		return nil, false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, false
	}
	return b, true
}

// Admissions implements Store.
func (s *sqlStore) Admissions(ctx context.Context, q Query) ([]AdmissionRecord, error) {
	var nsPat, imgPat *glob.Pattern
	if q.Namespace != "" {
		p, err := glob.Compile(q.Namespace)
		if err != nil {
			return nil, fmt.Errorf("namespace: %w", err)
		}
		nsPat = &p
	}
	if q.Image != "" {
		p, err := glob.Compile(q.Image)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		imgPat = &p
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT a.at, a.uid, COALESCE(op.value, ''), COALESCE(ep.value, ''), a.flags,
		COALESCE(ns.name, ''), COALESCE(w.pod, ''), COALESCE(ok.value, ''), COALESCE(w.owner_name, ''),
		COALESCE(c.value, ''), COALESCE(ck.value, ''), COALESCE(u.value, ''),
		COALESCE(i.ref, ''), COALESCE(n.ref, ''), COALESCE(ac.value, ''), COALESCE(t.ref, ''),
		COALESCE(d.digest, ''), COALESCE(r.value, ''), a.violations
		FROM admissions a
		LEFT JOIN names op ON op.id = a.operation
		LEFT JOIN names ep ON ep.id = a.endpoint
		LEFT JOIN workloads w ON w.id = a.workload
		LEFT JOIN namespaces ns ON ns.id = w.namespace
		LEFT JOIN names ok ON ok.id = w.owner_kind
		LEFT JOIN names c ON c.id = a.container
		LEFT JOIN names ck ON ck.id = a.container_kind
		LEFT JOIN names u ON u.id = a.usr
		LEFT JOIN images i ON i.id = a.image
		LEFT JOIN images n ON n.id = a.normalized
		LEFT JOIN names ac ON ac.id = a.action
		LEFT JOIN images t ON t.id = a.target
		LEFT JOIN digests d ON d.id = a.digest
		LEFT JOIN names r ON r.id = a.rule
		WHERE a.at >= ?
		ORDER BY a.at DESC, a.id DESC`), sinceMillis(q.Since))
	if err != nil {
		return nil, s.wrap("reading admission records", err)
	}
	defer rows.Close()
	var out []AdmissionRecord
	for rows.Next() {
		var a AdmissionRecord
		var at, flags int64
		var uid []byte
		var violations sql.NullString
		if err := rows.Scan(&at, &uid, &a.Operation, &a.Endpoint, &flags, &a.Namespace, &a.Pod, &a.OwnerKind, &a.OwnerName,
			&a.Container, &a.ContainerKind, &a.User, &a.Image, &a.Normalized, &a.Action, &a.Target, &a.Digest, &a.Rule, &violations); err != nil {
			return nil, s.wrap("reading admission records", err)
		}
		if nsPat != nil && !nsPat.Match(a.Namespace) {
			continue
		}
		if imgPat != nil && !imgPat.Match(a.Image) && !imgPat.Match(a.Normalized) {
			continue
		}
		a.Time = time.UnixMilli(at).UTC()
		a.UID = decodeUID(uid)
		a.DryRun = flags&flagDryRun != 0
		a.Fallback = flags&flagFallback != 0
		if violations.Valid {
			if err := json.Unmarshal([]byte(violations.String), &a.Violations); err != nil {
				return nil, s.wrap("reading admission records", fmt.Errorf("violations of %s: %w", a.UID, err))
			}
		}
		out = append(out, a)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, s.wrap("reading admission records", rows.Err())
}

func sinceMillis(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 62
	}
	return t.UnixMilli()
}

func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

// Copies implements Store.
func (s *sqlStore) Copies(ctx context.Context, q Query) ([]CopyRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT c.at, COALESCE(src.ref, ''), COALESCE(dst.ref, ''), COALESCE(d.digest, ''),
		c.platforms, c.bytes, c.duration_ms, COALESCE(r.value, ''), c.error
		FROM copies c
		LEFT JOIN images src ON src.id = c.source
		LEFT JOIN images dst ON dst.id = c.target
		LEFT JOIN digests d ON d.id = c.digest
		LEFT JOIN names r ON r.id = c.result
		WHERE c.at >= ? ORDER BY c.at DESC, c.id DESC`+limitClause(q.Limit)), sinceMillis(q.Since))
	if err != nil {
		return nil, s.wrap("reading copy records", err)
	}
	defer rows.Close()
	var out []CopyRecord
	for rows.Next() {
		var c CopyRecord
		var at, ms int64
		var platforms string
		if err := rows.Scan(&at, &c.Source, &c.Target, &c.Digest, &platforms, &c.Bytes, &ms, &c.Result, &c.Error); err != nil {
			return nil, s.wrap("reading copy records", err)
		}
		c.Time = time.UnixMilli(at).UTC()
		c.Duration = time.Duration(ms) * time.Millisecond
		if platforms != "" {
			c.Platforms = strings.Split(platforms, ",")
		}
		out = append(out, c)
	}
	return out, s.wrap("reading copy records", rows.Err())
}

const scanColumns = `s.id, s.at, COALESCE(i.ref, ''), COALESCE(di.digest, ''), COALESCE(dm.digest, ''), COALESCE(sn.value, ''), COALESCE(sv.value, ''),
	s.db_at, s.critical, s.high, s.medium, s.low, s.unknown`

const scanJoins = ` FROM scans s
	LEFT JOIN images i ON i.id = s.image
	LEFT JOIN digests di ON di.id = s.index_digest
	LEFT JOIN digests dm ON dm.id = s.manifest_digest
	LEFT JOIN names sn ON sn.id = s.scanner
	LEFT JOIN names sv ON sv.id = s.scanner_version`

func scanScan(sc interface{ Scan(...any) error }, id *int64, r *ScanRecord, extra ...any) error {
	var at, dbAt int64
	var c [5]int
	dst := append([]any{id, &at, &r.Image, &r.IndexDigest, &r.ManifestDigest, &r.Scanner, &r.ScannerVersion, &dbAt, &c[0], &c[1], &c[2], &c[3], &c[4]}, extra...)
	if err := sc.Scan(dst...); err != nil {
		return err
	}
	r.Time = time.UnixMilli(at).UTC()
	if dbAt != 0 {
		r.DBTime = time.UnixMilli(dbAt).UTC()
	}
	r.Counts = map[string]int{}
	for i, sev := range Severities {
		r.Counts[sev] = c[i]
	}
	return nil
}

// Scans implements Store.
func (s *sqlStore) Scans(ctx context.Context, q Query) ([]ScanRecord, error) {
	return s.queryScans(ctx, "reading scan records", `SELECT `+scanColumns+scanJoins+` WHERE s.at >= ? ORDER BY s.at DESC, s.id DESC`+limitClause(q.Limit),
		nil, sinceMillis(q.Since))
}

// queryScans runs query, which selects scanColumns, and returns the scan
// records that keep (nil: all) keeps; what names the reading in errors.
func (s *sqlStore) queryScans(ctx context.Context, what, query string, keep func(*ScanRecord) bool, args ...any) ([]ScanRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	var out []ScanRecord
	for rows.Next() {
		var r ScanRecord
		var id int64
		if err := scanScan(rows, &id, &r); err != nil {
			return nil, s.wrap(what, err)
		}
		if keep == nil || keep(&r) {
			out = append(out, r)
		}
	}
	return out, s.wrap(what, rows.Err())
}

// LatestScan implements Store.
func (s *sqlStore) LatestScan(ctx context.Context, digest string) (*ScanRecord, error) {
	var r ScanRecord
	var id int64
	var report []byte
	row := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+scanColumns+`, s.report`+scanJoins+`
		WHERE s.index_digest = (SELECT id FROM digests WHERE digest = ?) OR s.manifest_digest = (SELECT id FROM digests WHERE digest = ?)
		ORDER BY s.at DESC, s.id DESC LIMIT 1`), digest, digest)
	if err := scanScan(row, &id, &r, &report); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("scan of %s: %w", digest, ErrNotFound)
		}
		return nil, s.wrap("reading the scan of "+digest, err)
	}
	if len(report) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(report))
		if err == nil {
			r.Report, err = io.ReadAll(zr)
		}
		if err != nil {
			return nil, s.wrap("reading the report of the scan of "+digest, err)
		}
	}
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT COALESCE(v.value, ''), f.package, f.installed, f.fixed, COALESCE(sev.value, ''), f.cvss, COALESCE(st.value, '')
		FROM findings f
		LEFT JOIN names v ON v.id = f.vulnerability
		LEFT JOIN names sev ON sev.id = f.severity
		LEFT JOIN names st ON st.id = f.status
		WHERE f.scan = ? ORDER BY f.ord`), id)
	if err != nil {
		return nil, s.wrap("reading the findings of the scan of "+digest, err)
	}
	defer rows.Close()
	for rows.Next() {
		var f Finding
		if err := rows.Scan(&f.ID, &f.Package, &f.InstalledVersion, &f.FixedVersion, &f.Severity, &f.CVSS, &f.Status); err != nil {
			return nil, s.wrap("reading the findings of the scan of "+digest, err)
		}
		r.Findings = append(r.Findings, f)
	}
	return &r, s.wrap("reading the findings of the scan of "+digest, rows.Err())
}

// Gaps implements Store.
func (s *sqlStore) Gaps(ctx context.Context, since time.Time) ([]Gap, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT at_from, at_to, lost FROM gaps WHERE at_to >= ? ORDER BY at_to DESC, id DESC`), sinceMillis(since))
	if err != nil {
		return nil, s.wrap("reading gap records", err)
	}
	defer rows.Close()
	var out []Gap
	for rows.Next() {
		var from, to int64
		var g Gap
		if err := rows.Scan(&from, &to, &g.Count); err != nil {
			return nil, s.wrap("reading gap records", err)
		}
		g.From, g.To = time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
		out = append(out, g)
	}
	return out, s.wrap("reading gap records", rows.Err())
}

// Prune implements Store. It deletes in chunks (the LIMITs below), so that
// pruning never holds the write lock long enough to stall the writer.
func (s *sqlStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	cut := before.UnixMilli()
	var total int64
	for _, stmt := range []string{
		`DELETE FROM admissions WHERE id IN (SELECT id FROM admissions WHERE at < ? LIMIT 10000)`,
		`DELETE FROM copies WHERE id IN (SELECT id FROM copies WHERE at < ? LIMIT 10000)`,
		`DELETE FROM findings WHERE scan IN (SELECT id FROM scans WHERE at < ?)`,
		`DELETE FROM scans WHERE id IN (SELECT id FROM scans WHERE at < ? LIMIT 10000)`,
		`DELETE FROM gaps WHERE id IN (SELECT id FROM gaps WHERE at_to < ? LIMIT 10000)`,
		`DELETE FROM batches WHERE batch_key IN (SELECT batch_key FROM batches WHERE at < ? LIMIT 10000)`,
		// Claims are leases of seconds, not records: those that lapsed
		// before the cut are long over.
		`DELETE FROM claims WHERE expires < ?`,
	} {
		for {
			res, err := s.db.ExecContext(ctx, s.d.rebind(stmt), cut)
			if err != nil {
				return total, s.wrap("pruning records", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, s.wrap("pruning records", err)
			}
			if !strings.HasPrefix(stmt, "DELETE FROM findings") && !strings.HasPrefix(stmt, "DELETE FROM claims") {
				total += n
			}
			if n == 0 {
				break
			}
		}
	}
	return total, nil
}
