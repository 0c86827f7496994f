package webhook

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// providerConfig swaps docker.io images into an Artifact Registry
// repository that the provider creates images in.
const providerConfig = `sourceRegistries: [docker.io]
targetRegistry: europe-docker.pkg.dev/my-project/mirror/team-a
targetProvider:
  artifactRegistry: {project: my-project, location: europe, repository: mirror}
registries:
  europe-docker.pkg.dev: {credentials: {dockerConfig: /var/run/secrets/docker/config.json}}
`

// TestReloadThatTheMirrorCannotTakeIsRefused reloads configurations that
// change what the mirror service was built from: each is refused with a
// log line naming the keys, counted as a failed reload, and the last good
// configuration keeps deciding; a change the mirror does not depend on
// is applied, and so is going back to the start.
func TestReloadThatTheMirrorCannotTakeIsRefused(t *testing.T) {
	cases := []struct {
		name    string
		config  string
		refused string // the keys the log names; "" when the reload applies
	}{
		{"a new targetRegistry under a provider is refused", strings.Replace(providerConfig, "mirror/team-a", "mirror/team-b", 1), "targetRegistry changed"},
		{"a new provider repository and target are refused", strings.ReplaceAll(providerConfig, "mirror", "cache"), "targetRegistry, targetProvider changed"},
		{"dropping the provider is refused", strings.Replace(providerConfig, "targetProvider:\n  artifactRegistry: {project: my-project, location: europe, repository: mirror}\n", "", 1), "targetProvider changed"},
		{"new registry credentials are refused", strings.Replace(providerConfig, "/var/run/secrets/docker/config.json", "/etc/docker/config.json", 1), "registries changed"},
		{"copy options are refused", providerConfig + "mirroring: {platforms: [linux/amd64], concurrency: 8, presenceCache: {positiveTTL: 1m}}\n", "mirroring.platforms, mirroring.concurrency, mirroring.presenceCache changed"},
		{"the default concurrency written out is no change", providerConfig + "mirroring: {concurrency: 4, presenceCache: {positiveTTL: 30s}}\n", ""},
		{"a new policy applies", providerConfig + "policies: {denyList: [\"docker.io/unknown/*\"]}\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, providerConfig)
			var logs syncBuffer
			s := newTestServer(t, "", func(o *Options) {
				o.ConfigPath = path
				o.Mirror = &fakeMirror{present: map[string]bool{"europe-docker.pkg.dev/my-project/mirror/team-a/docker.io/library/nginx:1.27": true}}
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			before := s.Engine()
			writeFile(t, path, []byte(c.config))
			s.config.check()

			failed := metricValue(t, s.metrics, "image_swapper_config_reloads_total", "failure")
			ok := metricValue(t, s.metrics, "image_swapper_config_last_reload_successful")
			if c.refused == "" {
				if s.Engine() == before || failed != 0 || ok != 1 {
					t.Fatalf("the reload was not applied (failures %v, last successful %v):\n%s", failed, ok, logs.String())
				}
				return
			}
			if s.Engine() != before {
				t.Errorf("the refused configuration is in use")
			}
			if failed != 1 || ok != 0 {
				t.Errorf("failed reloads %v, last reload successful %v; want 1 and 0", failed, ok)
			}
			if !strings.Contains(logs.String(), "new configuration rejected") || !strings.Contains(logs.String(), c.refused+", but the mirror service keeps what it was started with; restart the server") {
				t.Errorf("the log does not say %q changed and needs a restart:\n%s", c.refused, logs.String())
			}
			// Admissions still swap to the target the mirror serves.
			resp := review(t, s.Handler(), "/mutate", readFile(t, filepath.Join("testdata", "requests", "v1beta1.json")))
			if len(resp.Warnings) != 1 || !strings.HasSuffix(resp.Warnings[0], "-> europe-docker.pkg.dev/my-project/mirror/team-a/docker.io/library/nginx:1.27") {
				t.Errorf("after the refused reload: warnings %q, want the swap to the first target", resp.Warnings)
			}
			// Back to what the mirror was built from: applied.
			writeFile(t, path, []byte(providerConfig+"# reverted\n"))
			s.config.check()
			if s.Engine() == before || metricValue(t, s.metrics, "image_swapper_config_last_reload_successful") != 1 {
				t.Errorf("going back to the start configuration was not applied:\n%s", logs.String())
			}
		})
	}
}

// TestReloadWithoutAMirrorMayChangeTheTarget checks that without a mirror
// nothing is bound at start: the target changes with the file.
func TestReloadWithoutAMirrorMayChangeTheTarget(t *testing.T) {
	path := writeConfig(t, providerConfig)
	s := newTestServer(t, "", func(o *Options) { o.ConfigPath = path })
	writeFile(t, path, []byte(strings.Replace(providerConfig, "mirror/team-a", "mirror/team-b", 1)))
	s.config.check()
	if got := s.Engine().Config().TargetRegistry; got != "europe-docker.pkg.dev/my-project/mirror/team-b" {
		t.Errorf("targetRegistry after the reload = %s, want the new one", got)
	}
}
