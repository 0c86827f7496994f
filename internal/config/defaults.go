package config

import (
	"strconv"
	"time"
)

// Defaults and limits that the schema's zero values stand for.
const (
	// DefaultWaitBudget is how long swap: wait waits for a copy when
	// mirroring.waitBudget is not set.
	DefaultWaitBudget = 5 * time.Second
	// MaxWaitBudget bounds mirroring.waitBudget (exclusive): the API server
	// gives a webhook at most 30s, and the rest of the request needs time too.
	MaxWaitBudget = 30 * time.Second
	// DefaultConcurrency is how many copies run at once when
	// mirroring.concurrency is not set; MaxConcurrency bounds it.
	DefaultConcurrency = 4
	MaxConcurrency     = 64
	// DefaultPositiveTTL and DefaultNegativeTTL are how long the mirror
	// believes that the target has, or lacks, an image when
	// mirroring.presenceCache does not say.
	DefaultPositiveTTL = 30 * time.Second
	DefaultNegativeTTL = 10 * time.Second
)

// PresenceTTLs are how long the mirror believes that the target has an
// image and that it lacks one (mirroring.presenceCache, default 30s and
// 10s); 0 means not at all.
func (c *Config) PresenceTTLs() (positive, negative time.Duration) {
	positive, negative = DefaultPositiveTTL, DefaultNegativeTTL
	if d := c.Mirroring.PresenceCache.PositiveTTL; d != nil {
		positive = d.Duration
	}
	if d := c.Mirroring.PresenceCache.NegativeTTL; d != nil {
		negative = d.Duration
	}
	return positive, negative
}

// SwapEnabled reports whether swapping is on (mirroring.enabled, default true).
func (c *Config) SwapEnabled() bool {
	return c.Mirroring.Enabled == nil || *c.Mirroring.Enabled
}

// EffectiveMode is the global mode (mode, default enforce).
func (c *Config) EffectiveMode() Mode {
	if c.Mode == "" {
		return ModeEnforce
	}
	return c.Mode
}

// PolicyMode is the mode of allow and deny list verdicts: policies.mode,
// else the global mode.
func (c *Config) PolicyMode() Mode {
	if c.Policies.Mode != "" {
		return c.Policies.Mode
	}
	return c.EffectiveMode()
}

// RuleMode is the mode of the denials of rules[i]: its mode, else the
// global mode.
func (c *Config) RuleMode(i int) Mode {
	if m := c.Rules[i].Mode; m != "" {
		return m
	}
	return c.EffectiveMode()
}

// RuleName is the name of rules[i] in explanations: its name, else "rules[i]".
func (c *Config) RuleName(i int) string {
	if n := c.Rules[i].Name; n != "" {
		return n
	}
	return "rules[" + strconv.Itoa(i) + "]"
}

// SwapPolicy is the swap policy at admission (mirroring.swap, default exists).
func (c *Config) SwapPolicy() SwapPolicy {
	if c.Mirroring.Swap == "" {
		return SwapExists
	}
	return c.Mirroring.Swap
}

// WaitBudget is how long swap: wait waits for a copy (mirroring.waitBudget,
// default 5s).
func (c *Config) WaitBudget() time.Duration {
	if c.Mirroring.WaitBudget == nil {
		return DefaultWaitBudget
	}
	return c.Mirroring.WaitBudget.Duration
}

// EffectiveAction is the rule's action: action, else swap when a target is
// set, else "" (which validation rejects).
func (r *Rule) EffectiveAction() Action {
	switch {
	case r.Action != "":
		return r.Action
	case r.Target != "":
		return ActionSwap
	}
	return ""
}
