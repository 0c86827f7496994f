package deploy_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestChartExtraEnvReachesTheContainer: extraEnv (documented for Trivy's
// client/server token) is added to serve's environment, with valueFrom
// kept, and the chart's own variables stay.
func TestChartExtraEnvReachesTheContainer(t *testing.T) {
	for _, variable := range helmVariables {
		t.Run(variable, func(t *testing.T) {
			bin := requireHelm(t, variable)
			out, err := template(t, bin, "extraEnv[0].name=TRIVY_TOKEN", "extraEnv[0].valueFrom.secretKeyRef.name=trivy-token", "extraEnv[0].valueFrom.secretKeyRef.key=token")
			if err != nil {
				t.Fatal(err)
			}
			objs, err := parseObjects(out)
			if err != nil {
				t.Fatal(err)
			}
			var d appsv1.Deployment
			objs.decode(t, "Deployment", release, &d)
			env := map[string]bool{}
			var token bool
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				env[e.Name] = true
				if e.Name == "TRIVY_TOKEN" {
					token = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "trivy-token" && e.ValueFrom.SecretKeyRef.Key == "token"
				}
			}
			if !token {
				t.Errorf("TRIVY_TOKEN from the Secret trivy-token is not in the container's env: %+v", d.Spec.Template.Spec.Containers[0].Env)
			}
			if !env["POD_NAMESPACE"] || !env["XDG_STATE_HOME"] {
				t.Errorf("the chart's own variables are gone: %v", env)
			}
		})
	}
}
