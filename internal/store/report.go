package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/image-swapper/image-swapper/internal/glob"
)

// The read methods of this file stream their result through a callback,
// one aggregate at a time, so that a report over millions of records holds
// only its aggregates in memory. CopySummaries, LatestScans and
// ScanSummaries aggregate in SQL and call back while the query's cursor is
// open: the callback must not call the store. AdmissionGroups counts the
// records as it reads them (see there) and calls back once they are read.

// AdmissionGroup aggregates the admission records of the window that
// share everything but their time, uid, operation, container and user.
type AdmissionGroup struct {
	Endpoint string
	// Namespace, Pod, OwnerKind and OwnerName are the workload, as in
	// AdmissionRecord.
	Namespace string
	Pod       string
	OwnerKind string
	OwnerName string
	// Image is the normalised reference, or the reference as written when
	// it did not normalise.
	Image      string
	Target     string
	Digest     string
	Action     string
	Rule       string
	DryRun     bool
	Fallback   bool
	Violations []Violation
	// Records is how many records the group holds; Requests how many
	// admission requests they came from, counting a request once a UTC
	// day (the sum of Days).
	Records  int64
	Requests int64
	// First and Last are the times of its oldest and newest record.
	First time.Time
	Last  time.Time
	// Days are the group's requests (distinct uids) per UTC day, oldest
	// first.
	Days []DayRequests
}

// DayRequests counts the requests of one UTC day.
type DayRequests struct {
	// Day is the day's number: its midnight is Day*24h after the Unix
	// epoch (see Midnight). A number rather than a time.Time: a report
	// holds one for each group and day, 600,000 of them for the ledger
	// of docs/performance.md.
	Day      int64
	Requests int64
}

// Midnight is the UTC midnight the day starts at.
func (d DayRequests) Midnight() time.Time { return time.UnixMilli(d.Day * dayMillis).UTC() }

// CopySummary aggregates the copy records of one source, target and
// result.
type CopySummary struct {
	Source string
	Target string
	Result string
	// Count is how many copies the summary holds; First and Last are the
	// times of the oldest and newest.
	Count int64
	First time.Time
	Last  time.Time
	// Latest is the newest of the copies.
	Latest CopyRecord
}

// Summarizer reads aggregates of the ledger, streamed, for reports. Store
// embeds it.
type Summarizer interface {
	// AdmissionGroups calls fn for each AdmissionGroup of the admission
	// records matching q (Limit is ignored), in the order of their newest
	// record.
	AdmissionGroups(ctx context.Context, q Query, fn func(*AdmissionGroup) error) error
	// CopySummaries calls fn for each CopySummary of the copy records at
	// or after since (zero: all).
	CopySummaries(ctx context.Context, since time.Time, fn func(*CopySummary) error) error
	// LatestScans calls fn for the newest scan of each pair of index and
	// manifest digest, with its findings and without its raw report.
	LatestScans(ctx context.Context, fn func(*ScanRecord) error) error
	// ScanSummaries calls fn for every scan record, oldest first, without
	// findings and raw report.
	ScanSummaries(ctx context.Context, fn func(*ScanRecord) error) error
}

var _ Summarizer = (*sqlStore)(nil)

const dayMillis = 24 * 60 * 60 * 1000

// AdmissionGroups implements Summarizer. A GROUP BY over millions of
// records costs the database a sort of all of them (COUNT(DISTINCT uid)
// needs one in either driver); reading the records in time order through
// the index on time and counting in a hash table costs a third of that.
// Memory grows with the groups and with one day's distinct requests, not
// with the records: uids are told apart within a day only, as the day is
// part of what a request is counted by.
func (s *sqlStore) AdmissionGroups(ctx context.Context, q Query, fn func(*AdmissionGroup) error) error {
	var nsPat, imgPat *glob.Pattern
	if q.Namespace != "" {
		p, err := glob.Compile(q.Namespace)
		if err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
		nsPat = &p
	}
	if q.Image != "" {
		p, err := glob.Compile(q.Image)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		imgPat = &p
	}
	groups, err := s.countAdmissions(ctx, q.Since)
	if err != nil {
		return s.wrap("summarising admission records", err)
	}
	out, err := s.resolveGroups(ctx, groups)
	if err != nil {
		return s.wrap("summarising admission records", err)
	}
	for i, r := range out {
		out[i] = resolvedGroup{} // what fn keeps of it is fn's
		g := r.group
		if nsPat != nil && !nsPat.Match(g.Namespace) {
			continue
		}
		if imgPat != nil && !imgPat.Match(g.Image) {
			continue
		}
		g.Days = slices.Clip(r.days)
		if err := fn(g); err != nil {
			return err
		}
	}
	return nil
}

// groupKey is what an AdmissionGroup's records share, as ids;
// violations is an index into the distinct violation texts.
type groupKey struct {
	endpoint, workload, image, target, digest, action, rule, flags int64
	violations                                                     int32
}

type groupCount struct {
	key               groupKey
	records           int64
	first, last       int64
	days              []DayRequests
	violationsJSON    string
	violationsPresent bool
}

// countAdmissions reads the admission records at or after since, oldest
// first, and counts them per group and day. Reading the rows (the
// driver's work) and counting them (ours) are about three to one in CPU,
// so one goroutine reads batches of rows while this one counts the last.
func (s *sqlStore) countAdmissions(ctx context.Context, since time.Time) ([]*groupCount, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT a.at, a.uid, a.endpoint, a.workload,
		CASE WHEN a.normalized = 0 THEN a.image ELSE a.normalized END, a.target, a.digest, a.action, a.rule, a.flags, a.violations
		FROM admissions a WHERE a.at >= ? ORDER BY a.at`), sinceMillis(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	const inFlight = 4
	full, free := make(chan *rowBatch, inFlight), make(chan *rowBatch, inFlight+2)
	for range inFlight + 2 {
		free <- &rowBatch{}
	}
	var violationTexts []string
	var readErr error
	go func() {
		defer close(full)
		violationTexts, readErr = readAdmissionRows(rows, free, full)
	}()
	var c admissionCounter
	for b := range full {
		c.count(b)
		free <- b
	}
	// full is closed: the reader is done.
	if readErr != nil {
		return nil, readErr
	}
	for _, g := range c.groups {
		if g.key.violations != 0 {
			g.violationsJSON, g.violationsPresent = violationTexts[g.key.violations], true
		}
	}
	return c.groups, nil
}

// admissionRow is what countAdmissions reads of a record; its uid is
// uids[uidFrom:uidTo] of its batch.
type admissionRow struct {
	at             int64
	key            groupKey
	uidFrom, uidTo int32
}

type rowBatch struct {
	rows []admissionRow
	uids []byte
}

const rowBatchSize = 1024

// readAdmissionRows reads rows into batches taken from free and sends
// them to full. It interns the violation texts: the index 0 is none.
func readAdmissionRows(rows *sql.Rows, free <-chan *rowBatch, full chan<- *rowBatch) ([]string, error) {
	violations := map[string]int32{}
	texts := []string{""}
	b := <-free
	b.rows, b.uids = b.rows[:0], b.uids[:0]
	var r admissionRow
	var uid, viol sql.RawBytes
	k := &r.key
	for rows.Next() {
		if err := rows.Scan(&r.at, &uid, &k.endpoint, &k.workload, &k.image, &k.target, &k.digest, &k.action, &k.rule, &k.flags, &viol); err != nil {
			return nil, err
		}
		k.violations = 0
		if viol != nil {
			v, ok := violations[string(viol)]
			if !ok {
				v = int32(len(texts))
				texts = append(texts, string(viol))
				violations[texts[v]] = v
			}
			k.violations = v
		}
		r.uidFrom = int32(len(b.uids))
		b.uids = append(b.uids, uid...)
		r.uidTo = int32(len(b.uids))
		b.rows = append(b.rows, r)
		if len(b.rows) == rowBatchSize {
			full <- b
			b = <-free
			b.rows, b.uids = b.rows[:0], b.uids[:0]
		}
	}
	if len(b.rows) > 0 {
		full <- b
	}
	return texts, rows.Err()
}

// admissionCounter counts rows per group and day, in time order.
type admissionCounter struct {
	byKey  map[groupKey]int32
	groups []*groupCount
	// seen holds the requests counted on the current day, by group and
	// uid: most uids fit a shortUID (a UUID is 16 bytes), others go to
	// seenLong, keyed by the group's 4 bytes and the uid.
	seen     map[shortUID]struct{}
	seenLong map[string]struct{}
	buf      []byte
	day      int64
	started  bool
}

type shortUID struct {
	group int32
	n     uint8
	uid   [23]byte
}

func (c *admissionCounter) count(b *rowBatch) {
	if c.byKey == nil {
		c.byKey, c.seen, c.seenLong = map[groupKey]int32{}, map[shortUID]struct{}{}, map[string]struct{}{}
	}
	for i := range b.rows {
		r := &b.rows[i]
		gi, ok := c.byKey[r.key]
		if !ok {
			gi = int32(len(c.groups))
			c.byKey[r.key] = gi
			c.groups = append(c.groups, &groupCount{key: r.key, first: r.at, last: r.at})
		}
		g := c.groups[gi]
		g.records++
		g.first, g.last = min(g.first, r.at), max(g.last, r.at)
		if d := floorDiv(r.at, dayMillis); d != c.day || !c.started {
			c.day, c.started = d, true
			clear(c.seen)
			clear(c.seenLong)
		}
		if !c.firstOfDay(gi, b.uids[r.uidFrom:r.uidTo]) {
			continue
		}
		if n := len(g.days); n > 0 && g.days[n-1].Day == c.day {
			g.days[n-1].Requests++
		} else {
			g.days = append(g.days, DayRequests{Day: c.day, Requests: 1})
		}
	}
}

// firstOfDay says whether uid is new in group gi today, and remembers it.
func (c *admissionCounter) firstOfDay(gi int32, uid []byte) bool {
	if len(uid) <= len(shortUID{}.uid) {
		k := shortUID{group: gi, n: uint8(len(uid))}
		copy(k.uid[:], uid)
		if _, ok := c.seen[k]; ok {
			return false
		}
		c.seen[k] = struct{}{}
		return true
	}
	c.buf = binary.LittleEndian.AppendUint32(c.buf[:0], uint32(gi))
	c.buf = append(c.buf, uid...)
	if _, ok := c.seenLong[string(c.buf)]; ok {
		return false
	}
	c.seenLong[string(c.buf)] = struct{}{}
	return true
}

// floorDiv is a / b rounded down, as a day number for a time before 1970
// too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// resolvedGroup is a group named, without its days.
type resolvedGroup struct {
	group *AdmissionGroup
	days  []DayRequests
}

// resolveGroups names the ids of the groups and orders them by their
// newest record.
func (s *sqlStore) resolveGroups(ctx context.Context, groups []*groupCount) ([]resolvedGroup, error) {
	names, images, digests, workloads := map[int64]string{}, map[int64]string{}, map[int64]string{}, map[int64]workloadNames{}
	for _, g := range groups {
		k := g.key
		names[k.endpoint], names[k.action], names[k.rule] = "", "", ""
		images[k.image], images[k.target] = "", ""
		digests[k.digest] = ""
		workloads[k.workload] = workloadNames{}
	}
	if err := s.lookup(ctx, `SELECT id, value FROM names`, names); err != nil {
		return nil, err
	}
	if err := s.lookup(ctx, `SELECT id, ref FROM images`, images); err != nil {
		return nil, err
	}
	if err := s.lookup(ctx, `SELECT id, digest FROM digests`, digests); err != nil {
		return nil, err
	}
	if err := s.lookupWorkloads(ctx, workloads); err != nil {
		return nil, err
	}
	out := make([]resolvedGroup, 0, len(groups))
	for i, c := range groups {
		groups[i] = nil
		k := c.key
		w := workloads[k.workload]
		g := &AdmissionGroup{Endpoint: names[k.endpoint], Namespace: w.namespace, Pod: w.pod, OwnerKind: w.ownerKind, OwnerName: w.ownerName,
			Image: images[k.image], Target: images[k.target], Digest: digests[k.digest], Action: names[k.action], Rule: names[k.rule],
			DryRun: k.flags&flagDryRun != 0, Fallback: k.flags&flagFallback != 0, Records: c.records,
			First: time.UnixMilli(c.first).UTC(), Last: time.UnixMilli(c.last).UTC()}
		for _, d := range c.days {
			g.Requests += d.Requests
		}
		if c.violationsPresent {
			if err := json.Unmarshal([]byte(c.violationsJSON), &g.Violations); err != nil {
				return nil, fmt.Errorf("violations of %s: %w", g.Image, err)
			}
		}
		out = append(out, resolvedGroup{g, c.days})
	}
	slices.SortFunc(out, func(x, y resolvedGroup) int {
		a, b := x.group, y.group
		return cmp.Or(a.Last.Compare(b.Last), a.First.Compare(b.First), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Image, b.Image),
			cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.OwnerKind, b.OwnerKind), cmp.Compare(a.OwnerName, b.OwnerName), cmp.Compare(a.Pod, b.Pod),
			cmp.Compare(a.Target, b.Target), cmp.Compare(a.Digest, b.Digest), cmp.Compare(a.Action, b.Action), cmp.Compare(a.Rule, b.Rule),
			compareBool(a.DryRun, b.DryRun), compareBool(a.Fallback, b.Fallback), cmp.Compare(violationsText(a.Violations), violationsText(b.Violations)))
	})
	return out, nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func violationsText(vs []Violation) string {
	if len(vs) == 0 {
		return ""
	}
	b, _ := json.Marshal(vs)
	return string(b)
}

// lookup fills the values of the ids in m from query, which selects id
// and value of a lookup table; ids the table lacks (0, none) stay "".
func (s *sqlStore) lookup(ctx context.Context, query string, m map[int64]string) error {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	var id int64
	var v sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		if _, ok := m[id]; ok {
			m[id] = string(v)
		}
	}
	return rows.Err()
}

type workloadNames struct {
	namespace, pod, ownerKind, ownerName string
}

func (s *sqlStore) lookupWorkloads(ctx context.Context, m map[int64]workloadNames) error {
	rows, err := s.db.QueryContext(ctx, `SELECT w.id, COALESCE(ns.name, ''), w.pod, COALESCE(ok.value, ''), w.owner_name
		FROM workloads w LEFT JOIN namespaces ns ON ns.id = w.namespace LEFT JOIN names ok ON ok.id = w.owner_kind`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var id int64
	var ns, pod, kind, name sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&id, &ns, &pod, &kind, &name); err != nil {
			return err
		}
		if _, ok := m[id]; ok {
			m[id] = workloadNames{namespace: string(ns), pod: string(pod), ownerKind: string(kind), ownerName: string(name)}
		}
	}
	return rows.Err()
}

// CopySummaries implements Summarizer.
func (s *sqlStore) CopySummaries(ctx context.Context, since time.Time, fn func(*CopySummary) error) error {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT COALESCE(src.ref, ''), COALESCE(dst.ref, ''), COALESCE(r.value, ''),
		c.n, c.first_at, c.at, COALESCE(d.digest, ''), c.platforms, c.bytes, c.duration_ms, c.error
		FROM (SELECT source, target, result, at, digest, platforms, bytes, duration_ms, error,
				ROW_NUMBER() OVER (PARTITION BY source, target, result ORDER BY at DESC, id DESC) AS latest,
				COUNT(*) OVER (PARTITION BY source, target, result) AS n,
				MIN(at) OVER (PARTITION BY source, target, result) AS first_at
			FROM copies WHERE at >= ?) c
		LEFT JOIN images src ON src.id = c.source
		LEFT JOIN images dst ON dst.id = c.target
		LEFT JOIN names r ON r.id = c.result
		LEFT JOIN digests d ON d.id = c.digest
		WHERE c.latest = 1
		ORDER BY 1, 2, 3`), sinceMillis(since))
	if err != nil {
		return s.wrap("summarising copy records", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CopySummary
		var first, last, ms int64
		var platforms string
		l := &c.Latest
		if err := rows.Scan(&c.Source, &c.Target, &c.Result, &c.Count, &first, &last, &l.Digest, &platforms, &l.Bytes, &ms, &l.Error); err != nil {
			return s.wrap("summarising copy records", err)
		}
		c.First, c.Last = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
		l.Time, l.Source, l.Target, l.Result = c.Last, c.Source, c.Target, c.Result
		l.Duration = time.Duration(ms) * time.Millisecond
		if platforms != "" {
			l.Platforms = strings.Split(platforms, ",")
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
	return s.wrap("summarising copy records", rows.Err())
}

// LatestScans implements Summarizer. It reads scans and findings in one
// query ordered by scan, so that one scan at a time is held.
func (s *sqlStore) LatestScans(ctx context.Context, fn func(*ScanRecord) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+scanColumns+`,
		COALESCE(v.value, ''), COALESCE(f.package, ''), COALESCE(f.installed, ''), COALESCE(f.fixed, ''),
		COALESCE(sev.value, ''), COALESCE(f.cvss, 0), COALESCE(st.value, ''), f.scan IS NOT NULL
		FROM (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY index_digest, manifest_digest ORDER BY at DESC, id DESC) AS n
			FROM scans) latest WHERE n = 1) l
		JOIN scans s ON s.id = l.id
		LEFT JOIN images i ON i.id = s.image
		LEFT JOIN digests di ON di.id = s.index_digest
		LEFT JOIN digests dm ON dm.id = s.manifest_digest
		LEFT JOIN names sn ON sn.id = s.scanner
		LEFT JOIN names sv ON sv.id = s.scanner_version
		LEFT JOIN findings f ON f.scan = s.id
		LEFT JOIN names v ON v.id = f.vulnerability
		LEFT JOIN names sev ON sev.id = f.severity
		LEFT JOIN names st ON st.id = f.status
		ORDER BY s.id, f.ord`)
	if err != nil {
		return s.wrap("reading the latest scans", err)
	}
	defer rows.Close()
	var cur *ScanRecord
	var curID int64
	for rows.Next() {
		var r ScanRecord
		var id int64
		var f Finding
		var has bool
		if err := scanScan(rows, &id, &r, &f.ID, &f.Package, &f.InstalledVersion, &f.FixedVersion, &f.Severity, &f.CVSS, &f.Status, &has); err != nil {
			return s.wrap("reading the latest scans", err)
		}
		if cur == nil || id != curID {
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			cur, curID = &r, id
		}
		if has {
			cur.Findings = append(cur.Findings, f)
		}
	}
	if err := rows.Err(); err != nil {
		return s.wrap("reading the latest scans", err)
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// ScanSummaries implements Summarizer.
func (s *sqlStore) ScanSummaries(ctx context.Context, fn func(*ScanRecord) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+scanColumns+scanJoins+` ORDER BY s.at, s.id`)
	if err != nil {
		return s.wrap("reading scan records", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ScanRecord
		var id int64
		if err := scanScan(rows, &id, &r); err != nil {
			return s.wrap("reading scan records", err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return s.wrap("reading scan records", rows.Err())
}
