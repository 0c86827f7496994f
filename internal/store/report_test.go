package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReportSummariesSQLite(t *testing.T) { testSummaries(t, sqliteOpener(t)(t)) }

func TestReportSummariesPostgres(t *testing.T) {
	o, _ := postgresOpener(t)
	testSummaries(t, o(t))
}

func testSummaries(t *testing.T, s Store) {
	ctx := context.Background()
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	nginx := func(at time.Duration, uid, ns, endpoint string) AdmissionRecord {
		a := admission(0)
		a.Time, a.UID, a.Namespace, a.Endpoint = day.Add(at), uid, ns, endpoint
		return a
	}
	recs := []AdmissionRecord{
		// One request, two containers with the same image, in shop: one
		// group of 2 records from 1 request.
		nginx(1*time.Hour, "u1", "shop", EndpointMutate),
		nginx(1*time.Hour+time.Second, "u1", "shop", EndpointMutate),
		nginx(2*time.Hour, "u2", "shop", EndpointMutate),
		// The next day, with u2 seen again: a request counts once a day.
		nginx(26*time.Hour, "u3", "shop", EndpointMutate),
		nginx(26*time.Hour+time.Second, "u2", "shop", EndpointMutate),
		// Another namespace, and a uid too long for the short form: one
		// request all the same.
		nginx(3*time.Hour, "not-a-uuid-and-longer-than-23-bytes", "payments", EndpointMutate),
		nginx(3*time.Hour, "not-a-uuid-and-longer-than-23-bytes", "payments", EndpointMutate),
	}
	denied := AdmissionRecord{Time: day.Add(4 * time.Hour), UID: "u5", Operation: "CREATE", Endpoint: EndpointValidate,
		Namespace: "shop", Pod: "debug", Image: "busybox", Normalized: "docker.io/library/busybox:latest", Action: "deny",
		Rule: "policies.denyList[0]", Violations: []Violation{{Rule: "policies.denyList[0]", Mode: "enforce", Message: "denied"}}}
	unparsed := AdmissionRecord{Time: day.Add(5 * time.Hour), UID: "u6", Endpoint: EndpointMutate, Namespace: "shop", Pod: "x",
		Image: "Not A Ref", Action: "keep"}
	recs = append(recs, denied, unparsed, nginx(-time.Hour, "old", "shop", EndpointMutate))
	const digest = "sha256:" + "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
	copies := []CopyRecord{
		{Time: day.Add(time.Hour), Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Result: "failed", Error: "429"},
		{Time: day.Add(2 * time.Hour), Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Result: "failed", Error: "503"},
		{Time: day.Add(3 * time.Hour), Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Result: "copied",
			Digest: digest, Platforms: []string{"linux/amd64", "linux/arm64"}, Bytes: 1000, Duration: 2 * time.Second},
		{Time: day.Add(-2 * time.Hour), Source: "docker.io/library/redis:7", Target: "registry.example.com/mirror/library/redis:7", Result: "copied"},
	}
	scan := func(at time.Duration, manifest string, findings ...Finding) ScanRecord {
		return ScanRecord{Time: day.Add(at), Image: "registry.example.com/mirror/library/nginx:1.27", IndexDigest: digest, ManifestDigest: manifest,
			Scanner: "trivy", ScannerVersion: "0.74.0", Counts: map[string]int{"CRITICAL": len(findings)}, Findings: findings,
			Report: []byte(`{"not":"returned"}`)}
	}
	cve := func(id string) Finding {
		return Finding{ID: id, Package: "musl", InstalledVersion: "1.2.4-r0", FixedVersion: "1.2.4-r1", Severity: "CRITICAL", CVSS: 9.8, Status: "fixed"}
	}
	scans := []ScanRecord{
		scan(4*time.Hour, "sha256:amd64", cve("CVE-OLD")),
		scan(5*time.Hour, "sha256:amd64", cve("CVE-1"), cve("CVE-2")),
		scan(4*time.Hour, "sha256:arm64"),
	}
	if err := s.Write(ctx, &Batch{Admissions: recs, Copies: copies, Scans: scans}); err != nil {
		t.Fatal(err)
	}

	t.Run("admission groups aggregate records by workload and decision, with requests by day", func(t *testing.T) {
		var got []AdmissionGroup
		if err := s.AdmissionGroups(ctx, Query{Since: day}, func(g *AdmissionGroup) error { got = append(got, *g); return nil }); err != nil {
			t.Fatal(err)
		}
		type key struct{ ns, image, action string }
		type agg struct {
			records, requests int64
			first, last       time.Time
			days              []DayRequests
		}
		sum := map[key]agg{}
		for _, g := range got {
			k := key{g.Namespace, g.Image, g.Action}
			if _, dup := sum[k]; dup {
				t.Errorf("two groups of %+v", k)
			}
			sum[k] = agg{g.Records, g.Requests, g.First, g.Last, g.Days}
		}
		today := day.Unix() / (24 * 60 * 60)
		next := today + 1
		want := map[key]agg{
			{"shop", "docker.io/library/nginx:1.27", "swap"}: {5, 4, day.Add(time.Hour), day.Add(26*time.Hour + time.Second),
				[]DayRequests{{today, 2}, {next, 2}}},
			{"payments", "docker.io/library/nginx:1.27", "swap"}: {2, 1, day.Add(3 * time.Hour), day.Add(3 * time.Hour), []DayRequests{{today, 1}}},
			{"shop", "docker.io/library/busybox:latest", "deny"}: {1, 1, day.Add(4 * time.Hour), day.Add(4 * time.Hour), []DayRequests{{today, 1}}},
			{"shop", "Not A Ref", "keep"}:                        {1, 1, day.Add(5 * time.Hour), day.Add(5 * time.Hour), []DayRequests{{today, 1}}},
		}
		if !reflect.DeepEqual(sum, want) {
			t.Errorf("groups:\n got %+v\nwant %+v", sum, want)
		}
		for _, g := range got {
			if g.Action == "deny" {
				if g.Rule != "policies.denyList[0]" || g.Endpoint != EndpointValidate || len(g.Violations) != 1 || g.Violations[0].Mode != "enforce" || g.Pod != "debug" {
					t.Errorf("the denial's group lost fields: %+v", g)
				}
			}
			if g.Action == "swap" && (g.Target != "registry.example.com/mirror/library/nginx:1.27" || g.OwnerKind != "ReplicaSet" || g.OwnerName != "web-7d9f" || g.Digest == "") {
				t.Errorf("a swap's group lost fields: %+v", g)
			}
		}
		if m := got[0].Days[0].Midnight(); !m.Equal(day) {
			t.Errorf("the first day's midnight is %v, want %v", m, day)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Last.Before(got[i-1].Last) {
				t.Errorf("groups are not in the order of their newest record: %v after %v", got[i].Last, got[i-1].Last)
			}
		}
	})
	t.Run("admission groups filter by namespace glob", func(t *testing.T) {
		var n int64
		if err := s.AdmissionGroups(ctx, Query{Namespace: "pay*"}, func(g *AdmissionGroup) error { n += g.Records; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("payments holds %d records, want 2", n)
		}
		if err := s.AdmissionGroups(ctx, Query{Namespace: "a b"}, func(*AdmissionGroup) error { return nil }); err == nil || !strings.Contains(err.Error(), "namespace") {
			t.Errorf("a bad glob gave %v, want an error naming the namespace", err)
		}
	})
	t.Run("copy summaries keep the count, the first time and the newest copy", func(t *testing.T) {
		var got []CopySummary
		if err := s.CopySummaries(ctx, day, func(c *CopySummary) error { got = append(got, *c); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []CopySummary{
			{Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Result: "copied", Count: 1,
				First: day.Add(3 * time.Hour), Last: day.Add(3 * time.Hour), Latest: copies[2]},
			{Source: "docker.io/library/nginx:1.27", Target: "registry.example.com/mirror/library/nginx:1.27", Result: "failed", Count: 2,
				First: day.Add(time.Hour), Last: day.Add(2 * time.Hour), Latest: copies[1]},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("copy summaries:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("latest scans: the newest of each digest pair, with findings", func(t *testing.T) {
		var got []ScanRecord
		if err := s.LatestScans(ctx, func(r *ScanRecord) error { got = append(got, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d scans, want 2 (amd64's newest and arm64's): %+v", len(got), got)
		}
		byManifest := map[string]ScanRecord{}
		for _, r := range got {
			byManifest[r.ManifestDigest] = r
			if r.Report != nil {
				t.Errorf("scan of %s came with its raw report", r.ManifestDigest)
			}
		}
		amd := byManifest["sha256:amd64"]
		if want := []Finding{cve("CVE-1"), cve("CVE-2")}; !reflect.DeepEqual(amd.Findings, want) || !amd.Time.Equal(day.Add(5*time.Hour)) || amd.Counts["CRITICAL"] != 2 {
			t.Errorf("amd64 scan: %+v, want the 5h scan with CVE-1 and CVE-2", amd)
		}
		if arm := byManifest["sha256:arm64"]; len(arm.Findings) != 0 || arm.Scanner != "trivy" || arm.IndexDigest != digest {
			t.Errorf("arm64 scan: %+v, want no findings", arm)
		}
	})
}
