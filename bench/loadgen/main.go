// Command loadgen sends AdmissionReviews to an image-swapper webhook on
// this machine at a fixed rate, and reports latency percentiles, errors
// and, given the server's PID, its peak resident memory and CPU time.
//
//	loadgen -url https://127.0.0.1:8443/mutate -ca ca.crt -rate 1000 -duration 60s -pid 1234
//
// The load is open-loop: request i is due at start + i/rate whatever
// happened to the others. Two latencies are reported: from when the
// request was sent (what kube-apiserver would measure), and from when it
// was due, which also counts the generator's own lateness, so that a
// stalled server shows as latency rather than as a lower rate.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pod5Containers is the default request: a Pod with five containers.
//
//go:embed pod5.json
var pod5Containers []byte

// Limits that keep a typo from turning into a flood.
const (
	maxRate     = 20000
	maxDuration = 10 * time.Minute
	maxInFlight = 2000
)

type options struct {
	url      string
	caFile   string
	body     string
	rate     int
	duration time.Duration
	pid      int
	http1    bool
	conns    int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "https://127.0.0.1:8443/mutate", "webhook URL; the host must be a loopback address")
	flag.StringVar(&o.caFile, "ca", "", "PEM CA that signed the server's certificate (required for https)")
	flag.StringVar(&o.body, "body", "", "AdmissionReview to send (default: a Pod with five containers)")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send")
	flag.IntVar(&o.pid, "pid", 0, "server PID, to report its peak RSS and CPU time from /proc")
	flag.BoolVar(&o.http1, "http1", false, "use HTTP/1.1 (default HTTP/2, as kube-apiserver)")
	flag.IntVar(&o.conns, "conns", 4, "HTTP/1.1 connections to keep open")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(o options, out io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	body := pod5Containers
	if o.body != "" {
		var err error
		if body, err = os.ReadFile(o.body); err != nil {
			return err
		}
	}
	uid, err := requestUID(body)
	if err != nil {
		return err
	}
	client, err := o.client()
	if err != nil {
		return err
	}

	// Warm up: connections, TLS sessions, the server's caches.
	for range 50 {
		if _, err := send(client, o.url, body, uid); err != nil {
			return fmt.Errorf("warm-up request: %w", err)
		}
	}

	load0 := readLoadavg()
	cpu0, _ := processCPU(o.pid)
	total := int(o.duration.Seconds() * float64(o.rate))
	latencies := make([]time.Duration, total) // from sending
	fromDue := make([]time.Duration, total)
	var (
		errs     atomic.Int64
		firstErr atomic.Value
		inFlight atomic.Int64
		wg       sync.WaitGroup
	)
	interval := time.Second / time.Duration(o.rate)
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if inFlight.Add(1) > maxInFlight {
			inFlight.Add(-1)
			errs.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Errorf("more than %d requests in flight", maxInFlight))
			latencies[i], fromDue[i] = -1, -1
			continue
		}
		wg.Go(func() {
			defer inFlight.Add(-1)
			sent := time.Now()
			if _, err := send(client, o.url, body, uid); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err)
				latencies[i], fromDue[i] = -1, -1
				return
			}
			end := time.Now()
			latencies[i], fromDue[i] = end.Sub(sent), end.Sub(due)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	load1 := readLoadavg()

	fmt.Fprintf(out, "requests   %d in %s (%.0f/s), errors %d\n", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), errs.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(out, "first error %v\n", e)
	}
	printLatency(out, "latency   ", latencies)
	printLatency(out, "from due  ", fromDue)
	fmt.Fprintf(out, "loadavg    before %s, after %s\n", load0, load1)
	if o.pid > 0 {
		rss, hwm, err := processMemory(o.pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "server     RSS %.1f MiB now, peak %.1f MiB (VmHWM)", float64(rss)/(1<<20), float64(hwm)/(1<<20))
		if cpu1, err := processCPU(o.pid); err == nil {
			used := cpu1 - cpu0
			fmt.Fprintf(out, ", CPU %s (%.0f µs per request, %.0f%% of a core)",
				used.Round(time.Millisecond), float64(used.Microseconds())/float64(total), 100*used.Seconds()/elapsed.Seconds())
		}
		fmt.Fprintln(out)
	}
	return nil
}

func (o options) check() error {
	u, err := url.Parse(o.url)
	if err != nil {
		return fmt.Errorf("-url %q: %w", o.url, err)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: the host must be a loopback address such as 127.0.0.1", o.url)
	}
	if u.Scheme == "https" && o.caFile == "" {
		return errors.New("-ca is required for an https URL")
	}
	if o.rate <= 0 || o.rate > maxRate {
		return fmt.Errorf("-rate %d: want 1 to %d", o.rate, maxRate)
	}
	if o.duration <= 0 || o.duration > maxDuration {
		return fmt.Errorf("-duration %s: want up to %s", o.duration, maxDuration)
	}
	if o.conns <= 0 {
		return fmt.Errorf("-conns %d: want at least 1", o.conns)
	}
	return nil
}

func (o options) client() (*http.Client, error) {
	tr := &http.Transport{
		MaxIdleConnsPerHost: o.conns,
		MaxConnsPerHost:     o.conns,
		ForceAttemptHTTP2:   !o.http1,
	}
	if o.http1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca %s: no PEM certificate", o.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// send posts one review and checks that the answer is a 200 naming its uid.
func send(c *http.Client, url string, body []byte, uid string) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if !bytes.Contains(b, []byte(`"uid":"`+uid+`"`)) {
		return resp.StatusCode, fmt.Errorf("the answer does not name uid %s: %.200s", uid, b)
	}
	return resp.StatusCode, nil
}

// requestUID finds request.uid in a review, cheaply.
func requestUID(body []byte) (string, error) {
	const key = `"uid":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", errors.New("the body has no \"uid\":\"...\"")
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", errors.New("the body's uid is not terminated")
	}
	return string(rest[:j]), nil
}

// printLatency prints the percentiles of the successful requests.
func printLatency(out io.Writer, label string, ds []time.Duration) {
	ok := slices.DeleteFunc(ds, func(d time.Duration) bool { return d < 0 })
	if len(ok) == 0 {
		return
	}
	slices.Sort(ok)
	fmt.Fprintf(out, "%s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", label,
		pct(ok, 50), pct(ok, 90), pct(ok, 99), pct(ok, 99.9), ok[len(ok)-1].Round(time.Microsecond))
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i].Round(time.Microsecond)
}

func readLoadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// processMemory reads VmRSS and VmHWM (the peak) of a process, in bytes.
func processMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// processCPU reads the user plus system CPU time of a process.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields count from after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
