package config

import (
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/image-swapper/image-swapper/internal/reference"
)

// Allowed values of the ECR enumerations, in the order messages list them.
var (
	ecrTagMutabilities = []string{"MUTABLE", "IMMUTABLE"}
	ecrEncryptions     = []string{"AES256", "KMS", "KMS_DSSE"}
)

var (
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	dnsLabel       = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	awsRegion      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	awsAccount     = regexp.MustCompile(`^[0-9]{12}$`)
	awsRoleARN     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
	gcpProject     = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	gcpLocation    = regexp.MustCompile(`^[a-z]+(-[a-z]+[0-9]+)?$`)
	garRepository  = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	platformPart   = regexp.MustCompile(`^[a-z0-9._-]+$`)
	dockerHubAlias = map[string]bool{"index.docker.io": true, "registry-1.docker.io": true}
)

// validateRegistries checks mirroring.platforms, registries and
// targetProvider: the keys that say how registries are reached.
func (c *Config) validateRegistries(p *problems) {
	seen := map[string]int{}
	for i, s := range c.Mirroring.Platforms {
		path := index("mirroring.platforms", i)
		parts := strings.Split(s, "/")
		valid := len(parts) == 2 || len(parts) == 3
		for _, part := range parts {
			valid = valid && platformPart.MatchString(part)
		}
		if !valid {
			p.add(path, "%q must be os/architecture[/variant] in lower case, e.g. linux/amd64 or linux/arm64/v8", s)
			continue
		}
		if first, dup := seen[s]; dup {
			p.add(path, "%q is already listed at mirroring.platforms[%d]", s, first)
			continue
		}
		seen[s] = i
	}

	hosts := map[string]string{}
	for _, key := range slices.Sorted(maps.Keys(c.Registries)) {
		path := field("registries", key)
		host, err := reference.ParseRegistry(key)
		switch {
		case err != nil:
			p.add(path, "%q is not a registry host: %s", key, reason(err))
			continue
		case dockerHubAlias[strings.ToLower(key)]:
			p.add(path, "%q is Docker Hub; write the key as \"docker.io\"", key)
			continue
		}
		if other, dup := hosts[strings.ToLower(host)]; dup {
			p.add(path, "names the same registry as registries[%q]", other)
			continue
		}
		hosts[strings.ToLower(host)] = key
		validateAccess(p, path, c.Registries[key])
	}

	c.validateTargetProvider(p)
}

func validateAccess(p *problems, path string, a RegistryAccess) {
	if a.Endpoint != "" {
		u, err := url.Parse(a.Endpoint)
		switch {
		case err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https":
			p.add(path+".endpoint", "%q must be a URL with a scheme and a host, e.g. https://mirror.example.com", a.Endpoint)
		case u.User != nil:
			p.add(path+".endpoint", "must not contain credentials; use %s.credentials", path)
		case u.RawQuery != "" || u.Fragment != "":
			p.add(path+".endpoint", "%q must not have a query or fragment", a.Endpoint)
		case u.Scheme == "http" && !a.Insecure:
			p.add(path+".endpoint", "%q is plain HTTP; set %s.insecure: true to allow it", a.Endpoint, path)
		}
	}
	for _, cr := range []struct {
		key   string
		creds *Credentials
	}{{"credentials", a.Credentials}, {"pull", a.Pull}, {"push", a.Push}} {
		if cr.creds != nil {
			validateCredentials(p, path+"."+cr.key, *cr.creds)
		}
	}
}

func validateCredentials(p *problems, path string, c Credentials) {
	var sources []string
	if c.DockerConfig != "" {
		sources = append(sources, "dockerConfig")
	}
	if c.Secret != "" {
		sources = append(sources, "secret")
	}
	if c.UsernameEnv != "" || c.PasswordEnv != "" {
		sources = append(sources, "usernameEnv/passwordEnv")
	}
	switch len(sources) {
	case 0:
		p.add(path, "names no source; set dockerConfig, secret, or usernameEnv and passwordEnv")
		return
	case 1:
	default:
		p.add(path, "sets %s; use one source", strings.Join(sources, " and "))
		return
	}
	if c.Secret != "" {
		ns, name, ok := strings.Cut(c.Secret, "/")
		if !ok || !dnsLabel.MatchString(ns) || len(ns) > 63 || !dnsSubdomain.MatchString(name) || len(name) > 253 {
			p.add(path+".secret", "%q must be namespace/name of a kubernetes.io/dockerconfigjson Secret", c.Secret)
		}
	}
	for _, env := range []struct{ key, value, other string }{
		{"usernameEnv", c.UsernameEnv, "passwordEnv"},
		{"passwordEnv", c.PasswordEnv, "usernameEnv"},
	} {
		switch {
		case env.value == "" && (c.UsernameEnv != "" || c.PasswordEnv != ""):
			p.add(path+"."+env.key, "required when %s is set", env.other)
		case env.value != "" && !envName.MatchString(env.value):
			p.add(path+"."+env.key, "%q is not an environment variable name", env.value)
		}
	}
}

func (c *Config) validateTargetProvider(p *problems) {
	tp := c.TargetProvider
	if tp == nil {
		return
	}
	switch {
	case tp.ECR != nil && tp.ArtifactRegistry != nil:
		p.add("targetProvider", "sets ecr and artifactRegistry; at most one provider")
		return
	case tp.ECR == nil && tp.ArtifactRegistry == nil:
		p.add("targetProvider", "set ecr or artifactRegistry, or remove targetProvider")
		return
	}
	if c.TargetRegistry == "" {
		p.add("targetProvider", "creates repositories in targetRegistry, which is not set")
	}
	host, _, _ := strings.Cut(c.TargetRegistry, "/")
	if tp.ECR != nil {
		validateECR(p, "targetProvider.ecr", *tp.ECR, strings.ToLower(host))
	} else {
		validateArtifactRegistry(p, "targetProvider.artifactRegistry", *tp.ArtifactRegistry, c.TargetRegistry)
	}
}

func validateECR(p *problems, path string, e ECR, target string) {
	if e.Region == "" {
		p.add(path+".region", "required, e.g. us-east-1")
	} else if !awsRegion.MatchString(e.Region) {
		p.add(path+".region", "%q is not an AWS region, e.g. us-east-1", e.Region)
	}
	if e.AccountID == "" {
		p.add(path+".accountId", "required: the 12-digit account that owns the registry")
	} else if !awsAccount.MatchString(e.AccountID) {
		p.add(path+".accountId", "%q must be 12 digits", e.AccountID)
	}
	if e.AssumeRoleARN != "" && !awsRoleARN.MatchString(e.AssumeRoleARN) {
		p.add(path+".assumeRoleArn", "%q is not an IAM role ARN, e.g. arn:aws:iam::123456789012:role/ecr-mirror", e.AssumeRoleARN)
	}
	keys := map[string]int{}
	for i, t := range e.Tags {
		tp := index(path+".tags", i)
		switch {
		case t.Key == "":
			p.add(tp+".key", "required")
		case len(t.Key) > 128:
			p.add(tp+".key", "is %d characters long; ECR allows 128", len(t.Key))
		case len(t.Value) > 256:
			p.add(tp+".value", "is %d characters long; ECR allows 256", len(t.Value))
		}
		if first, dup := keys[t.Key]; dup && t.Key != "" {
			p.add(tp+".key", "%q is already the key of %s", t.Key, index(path+".tags", first))
		}
		keys[t.Key] = i
	}
	checkEnum(p, path+".imageTagMutability", e.ImageTagMutability, ecrTagMutabilities)
	checkEnum(p, path+".encryptionType", e.EncryptionType, ecrEncryptions)
	if e.KMSKey != "" && e.EncryptionType != "KMS" && e.EncryptionType != "KMS_DSSE" {
		p.add(path+".kmsKey", "only used when encryptionType is KMS or KMS_DSSE")
	}
	jsonObject(p, path+".accessPolicy", e.AccessPolicy)
	jsonObject(p, path+".lifecyclePolicy", e.LifecyclePolicy)

	if target == "" || !awsAccount.MatchString(e.AccountID) || !awsRegion.MatchString(e.Region) {
		return
	}
	prefix := e.AccountID + ".dkr.ecr"
	if !strings.HasPrefix(target, prefix+".") && !strings.HasPrefix(target, prefix+"-fips.") || !strings.Contains(target, "."+e.Region+".amazonaws.com") {
		p.add(path, "targetRegistry %q is not the ECR registry of accountId %s in %s; expected %s.dkr.ecr.%s.amazonaws.com", target, e.AccountID, e.Region, e.AccountID, e.Region)
	}
}

func validateArtifactRegistry(p *problems, path string, a ArtifactRegistry, target string) {
	checks := []struct {
		key, value, example string
		re                  *regexp.Regexp
	}{
		{"project", a.Project, "my-project", gcpProject},
		{"location", a.Location, "us-central1 or europe", gcpLocation},
		{"repository", a.Repository, "mirror", garRepository},
	}
	valid := true
	for _, ch := range checks {
		switch {
		case ch.value == "":
			p.add(path+"."+ch.key, "required, e.g. %s", ch.example)
			valid = false
		case !ch.re.MatchString(ch.value):
			p.add(path+"."+ch.key, "%q is not a valid %s, e.g. %s", ch.value, ch.key, ch.example)
			valid = false
		}
	}
	if !valid || target == "" {
		return
	}
	want := a.Location + "-docker.pkg.dev/" + strings.ReplaceAll(a.Project, ":", "/") + "/" + a.Repository
	if target != want && !strings.HasPrefix(target, want+"/") {
		p.add(path, "targetRegistry must be %s or a path below it, where this repository serves images", want)
	}
}

// jsonObject checks that a policy document, when set, is a JSON object.
func jsonObject(p *problems, path, doc string) {
	if doc == "" {
		return
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		p.add(path, "must be a JSON object: %v", err)
	}
}
