package config

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultsApplyToUnsetValues(t *testing.T) {
	var c Config
	if !c.SwapEnabled() {
		t.Error("SwapEnabled() = false for an unset mirroring.enabled, want true")
	}
	if got := c.EffectiveMode(); got != ModeEnforce {
		t.Errorf("EffectiveMode() = %q, want enforce", got)
	}
	if got := c.PolicyMode(); got != ModeEnforce {
		t.Errorf("PolicyMode() = %q, want enforce", got)
	}
	if got := c.SwapPolicy(); got != SwapExists {
		t.Errorf("SwapPolicy() = %q, want exists", got)
	}
	if got := c.WaitBudget(); got != 5*time.Second {
		t.Errorf("WaitBudget() = %v, want 5s", got)
	}
}

func TestSetValuesOverrideDefaults(t *testing.T) {
	off := false
	c := Config{
		Mode: ModeWarn,
		Mirroring: Mirroring{
			Enabled:    &off,
			Swap:       SwapAlways,
			WaitBudget: &metav1.Duration{Duration: 2 * time.Second},
		},
		Policies: Policies{Mode: ModeAudit},
		Rules: []Rule{
			{Name: "pin", Image: "nginx", Target: "registry.example.com/nginx"},
			{Registry: "ghcr.io", Action: ActionDeny, Mode: ModeEnforce},
			{Registry: "quay.io", Action: ActionDeny},
		},
	}
	if c.SwapEnabled() {
		t.Error("SwapEnabled() = true for enabled: false")
	}
	if got := c.EffectiveMode(); got != ModeWarn {
		t.Errorf("EffectiveMode() = %q, want warn", got)
	}
	if got := c.PolicyMode(); got != ModeAudit {
		t.Errorf("PolicyMode() = %q, want the policies' audit", got)
	}
	if got := c.SwapPolicy(); got != SwapAlways {
		t.Errorf("SwapPolicy() = %q, want always", got)
	}
	if got := c.WaitBudget(); got != 2*time.Second {
		t.Errorf("WaitBudget() = %v, want 2s", got)
	}
	tests := []struct {
		i      int
		name   string
		mode   Mode
		action Action
	}{
		{0, "pin", ModeWarn, ActionSwap},
		{1, "rules[1]", ModeEnforce, ActionDeny},
		{2, "rules[2]", ModeWarn, ActionDeny},
	}
	for _, tt := range tests {
		if got := c.RuleName(tt.i); got != tt.name {
			t.Errorf("RuleName(%d) = %q, want %q", tt.i, got, tt.name)
		}
		if got := c.RuleMode(tt.i); got != tt.mode {
			t.Errorf("RuleMode(%d) = %q, want %q", tt.i, got, tt.mode)
		}
		if got := c.Rules[tt.i].EffectiveAction(); got != tt.action {
			t.Errorf("rules[%d].EffectiveAction() = %q, want %q", tt.i, got, tt.action)
		}
	}
}
