package config

import (
	"slices"
	"strings"
	"time"
)

// Defaults and limits of security.scanning.
const (
	// DefaultScanTimeout bounds one scanner run when
	// security.scanning.timeout is not set.
	DefaultScanTimeout = 5 * time.Minute
	// DefaultScanConcurrency is how many scans run at once when
	// security.scanning.concurrency is not set; MaxScanConcurrency bounds
	// it (scanners are memory-hungry).
	DefaultScanConcurrency = 2
	MaxScanConcurrency     = 32
	// DefaultRescanAfter is the verdict age after which an image is
	// rescanned when security.scanning.rescanAfter is not set.
	DefaultRescanAfter = 24 * time.Hour
	// IgnoreDateLayout is the layout of security.scanning.ignore[].expires.
	IgnoreDateLayout = "2006-01-02"
)

// DefaultScanPlatforms are the platforms of an index that are scanned when
// security.scanning.platforms is not set.
var DefaultScanPlatforms = []string{"linux/amd64", "linux/arm64"}

// defaultScanCommands are the scanner commands per provider; the image
// reference (image@digest) is appended.
var defaultScanCommands = map[string][]string{
	"trivy": {"trivy", "image", "--format", "json", "--quiet", "--scanners", "vuln"},
	"grype": {"grype", "-o", "json", "--quiet"},
}

// severities are the values of security.scanning.severity, from least
// severe.
var severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

var pendingPolicies = []PendingPolicy{PendingDeny, PendingWarn, PendingAllow}

// EffectiveCommand is the scanner command: command, else the provider's
// default. It returns a copy the caller may append to.
func (s *Scanning) EffectiveCommand() []string {
	if len(s.Command) > 0 {
		return slices.Clone(s.Command)
	}
	return slices.Clone(defaultScanCommands[s.Provider])
}

// ScanTimeout bounds one scanner run (timeout, default 5m).
func (s *Scanning) ScanTimeout() time.Duration {
	if s.Timeout == nil {
		return DefaultScanTimeout
	}
	return s.Timeout.Duration
}

// ScanConcurrency is how many scans run at once (concurrency, default 2).
func (s *Scanning) ScanConcurrency() int {
	if s.Concurrency == 0 {
		return DefaultScanConcurrency
	}
	return s.Concurrency
}

// ScanPlatforms are the platforms of an index that are scanned (platforms,
// default linux/amd64 and linux/arm64).
func (s *Scanning) ScanPlatforms() []string {
	if len(s.Platforms) == 0 {
		return slices.Clone(DefaultScanPlatforms)
	}
	return slices.Clone(s.Platforms)
}

// PendingPolicy is what admission does without a verdict (pending,
// default deny).
func (s *Scanning) PendingPolicy() PendingPolicy {
	if s.Pending == "" {
		return PendingDeny
	}
	return s.Pending
}

// RescanInterval is the verdict age after which an image is rescanned
// (rescanAfter, default 24h).
func (s *Scanning) RescanInterval() time.Duration {
	if s.RescanAfter == nil {
		return DefaultRescanAfter
	}
	return s.RescanAfter.Duration
}

// validateScanning checks security.scanning. The VEX documents are read,
// and their paths checked, when the policy is compiled (scan.NewPolicy).
func (c *Config) validateScanning(p *problems) {
	const path = "security.scanning"
	s := c.Security.Scanning
	if s.Provider != "" {
		checkEnum(p, path+".provider", s.Provider, providers)
	} else if s.Enabled {
		p.add(path+".provider", "required when scanning is enabled; one of %s", strings.Join(providers, ", "))
	}
	if s.Command != nil {
		switch {
		case len(s.Command) == 0:
			p.add(path+".command", "must not be empty; leave it out for the provider's default")
		case strings.TrimSpace(s.Command[0]) == "":
			p.add(index(path+".command", 0), "must name the scanner executable, e.g. trivy")
		}
	}
	if s.Timeout != nil && s.Timeout.Duration <= 0 {
		p.add(path+".timeout", "%s must be more than 0s (default %s)", s.Timeout.Duration, DefaultScanTimeout)
	}
	if s.Concurrency < 0 || s.Concurrency > MaxScanConcurrency {
		p.add(path+".concurrency", "%d must be between 1 and %d (0 means the default, %d)", s.Concurrency, MaxScanConcurrency, DefaultScanConcurrency)
	}
	for i, pl := range s.Platforms {
		if msg := checkPlatform(pl); msg != "" {
			p.add(index(path+".platforms", i), "%q %s", pl, msg)
		}
	}
	if s.Severity != "" && !slices.Contains(severities, strings.ToUpper(s.Severity)) {
		p.add(path+".severity", "%q is not one of %s", s.Severity, strings.Join(severities, ", "))
	}
	if s.MaxCVSS != nil && (*s.MaxCVSS < 0 || *s.MaxCVSS > 10) {
		p.add(path+".maxCVSS", "%g must be between 0 and 10, a CVSS base score", *s.MaxCVSS)
	}
	checkEnum(p, path+".pending", s.Pending, pendingPolicies)
	if s.RescanAfter != nil && s.RescanAfter.Duration <= 0 {
		p.add(path+".rescanAfter", "%s must be more than 0s (default %s)", s.RescanAfter.Duration, DefaultRescanAfter)
	}
	for i, pat := range s.SkipImages {
		p.imagePattern(index(path+".skipImages", i), pat)
	}
	for i, e := range s.Ignore {
		validateIgnore(p, index(path+".ignore", i), e)
	}
	for i, f := range s.VEX {
		if strings.TrimSpace(f) == "" {
			p.add(index(path+".vex", i), "must not be empty; give the path of an OpenVEX document")
		}
	}
}

func validateIgnore(p *problems, path string, e IgnoreEntry) {
	switch {
	case e.ID == "":
		p.add(path+".id", "required: the vulnerability id as the scanner reports it, e.g. CVE-2019-18276")
	case indexSpace(e.ID) >= 0 || strings.ContainsAny(e.ID, "*?"):
		p.add(path+".id", "%q must be one vulnerability id, without whitespace or wildcards", e.ID)
	}
	for i, pat := range e.Images {
		p.imagePattern(index(path+".images", i), pat)
	}
	for i, ns := range e.Namespaces {
		p.namespacePattern(index(path+".namespaces", i), ns)
	}
	if e.Expires == "" {
		p.add(path+".expires", "required: the last day the entry applies, YYYY-MM-DD (exceptions must end)")
	} else if _, err := time.Parse(IgnoreDateLayout, e.Expires); err != nil {
		p.add(path+".expires", "%q is not a date YYYY-MM-DD, e.g. 2027-01-31", e.Expires)
	}
	if strings.TrimSpace(e.Reason) == "" {
		p.add(path+".reason", "required: say why the finding is acceptable, e.g. a ticket")
	}
}

// IgnoreExpiry is when an ignore entry stops applying: the end of its
// expires day, UTC (the start of the next day). ok is false for an
// invalid date, which Validate reports.
func (e IgnoreEntry) IgnoreExpiry() (end time.Time, ok bool) {
	d, err := time.Parse(IgnoreDateLayout, e.Expires)
	if err != nil {
		return time.Time{}, false
	}
	return d.AddDate(0, 0, 1), true
}

// checkPlatform checks os/arch[/variant] and says what is wrong, or "".
func checkPlatform(s string) string {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return "is not a platform os/architecture[/variant], e.g. linux/arm64"
	}
	for _, part := range parts {
		if part == "" || indexSpace(part) >= 0 {
			return "is not a platform os/architecture[/variant], e.g. linux/arm64"
		}
	}
	return ""
}
