package config

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Sync configures the loop that keeps mirrored tags up to date
// (mirroring.sync).
type Sync struct {
	// Interval is how often the mirrored tags are checked (default 6h).
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Window limits the check to tags that Pods used within it, such as
	// 30d (the default) or 36h.
	Window string `json:"window,omitempty"`
	// Policy is what happens when upstream moved: follow (default)
	// copies the new digest; freeze keeps the mirrored one and reports
	// the drift.
	Policy SyncPolicy `json:"policy,omitempty"`
}

// SyncPolicy says what the sync does with a tag that moved upstream.
type SyncPolicy string

// The sync policies.
const (
	SyncFollow SyncPolicy = "follow" // copy the new digest
	SyncFreeze SyncPolicy = "freeze" // keep the mirrored digest, report drift
)

var syncPolicies = []SyncPolicy{SyncFollow, SyncFreeze}

// Sync defaults and bounds.
const (
	DefaultSyncInterval = 6 * time.Hour
	DefaultSyncWindow   = 30 * 24 * time.Hour
	// MinSyncInterval keeps a typo from polling registries every second.
	MinSyncInterval = time.Minute
)

// SyncInterval is mirroring.sync.interval, default 6h.
func (s *Sync) SyncInterval() time.Duration {
	if s.Interval == nil {
		return DefaultSyncInterval
	}
	return s.Interval.Duration
}

// SyncWindow is mirroring.sync.window, default 30d.
func (s *Sync) SyncWindow() time.Duration {
	if s.Window == "" {
		return DefaultSyncWindow
	}
	d, err := ParseRetention(s.Window)
	if err != nil {
		return DefaultSyncWindow // Validate refuses it
	}
	return d
}

// SyncPolicyOrDefault is mirroring.sync.policy, default follow.
func (s *Sync) SyncPolicyOrDefault() SyncPolicy {
	if s.Policy == "" {
		return SyncFollow
	}
	return s.Policy
}

func (c *Config) validateSync(p *problems) {
	s := c.Mirroring.Sync
	if s.Interval != nil && s.Interval.Duration < MinSyncInterval {
		p.add("mirroring.sync.interval", "%s is shorter than the minimum, %s", s.Interval.Duration, MinSyncInterval)
	}
	if s.Window != "" {
		if d, err := ParseRetention(s.Window); err != nil {
			p.add("mirroring.sync.window", "%v", err)
		} else if d <= 0 {
			p.add("mirroring.sync.window", "%s must be more than 0", s.Window)
		}
	}
	checkEnum(p, "mirroring.sync.policy", s.Policy, syncPolicies)
}
