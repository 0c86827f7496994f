package importer

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/image-swapper/image-swapper/internal/config"
)

// The target of a k8s-image-swapper config names the registry and how
// repositories are created in it (pkg/config/config.go, pkg/registry/ecr.go
// and gar.go); image-swapper's targetProvider does the same. Each setting
// is carried over only when image-swapper's validation accepts it, so that
// one bad option costs that option, not the translation.

// awsTarget reads target.aws: the ECR host, and a function that writes
// targetProvider.ecr once the host is known to be valid.
func (t *kisTranslator) awsTarget(n *yaml.Node, line int) (string, func(string), error) {
	if n == nil || n.Kind != yaml.MappingNode {
		return "", nil, fmt.Errorf("importer: target.aws (accountId, region) is required for an ECR target")
	}
	m, err := newYmap(n, "target.aws")
	if err != nil {
		return "", nil, err
	}
	account, _ := m.get("accountId")
	region, _ := m.get("region")
	if scalar(account) == "" || scalar(region) == "" {
		return "", nil, fmt.Errorf("importer: line %d: target.aws needs accountId and region, from which k8s-image-swapper builds ACCOUNT.dkr.ecr.REGION.amazonaws.com", line)
	}
	role, roleLine := m.get("role")
	opts, optsLine := m.get("ecrOptions")
	var om *ymap
	if opts != nil && opts.ShortTag() != "!!null" {
		if opts.Kind != yaml.MappingNode {
			t.fs.add(optsLine, "target.aws.ecrOptions", "not a mapping; not imported")
		} else if om, err = newYmap(opts, "target.aws.ecrOptions"); err != nil {
			return "", nil, err
		}
	}
	m.rest(func(key string, l int, _ *yaml.Node) {
		t.fs.add(l, "target.aws."+key, "k8s-image-swapper does not know this key and ignores it; not imported")
	})
	host := scalar(account) + ".dkr.ecr." + scalar(region) + ".amazonaws.com"
	provider := func(host string) {
		e := &ecrBuilder{t: t, host: host, ecr: config.ECR{AccountID: scalar(account), Region: scalar(region)}}
		if err := e.check(); err != nil {
			// The docs' placeholder account (123456789) is not one: AWS
			// account IDs have 12 digits.
			reason := fmt.Sprintf("image-swapper cannot create repositories in this ECR registry (%v); targetProvider.ecr is not written, so the repositories must exist before images are copied", oneLine(err))
			if role != nil || om != nil {
				reason += ", and role and ecrOptions are not imported"
			}
			t.fs.add(line, "target.aws", reason)
			if om != nil {
				om.rest(func(string, int, *yaml.Node) {})
			}
			return
		}
		if role != nil && scalar(role) != "" {
			e.set(roleLine, "target.aws.role", func(c *config.ECR) { c.AssumeRoleARN = scalar(role) })
		}
		e.options(om)
		t.cfg.TargetProvider = &config.TargetProvider{ECR: &e.ecr}
	}
	return host, provider, nil
}

// ecrBuilder adds settings to targetProvider.ecr one at a time, keeping
// each only if the configuration still validates.
type ecrBuilder struct {
	t    *kisTranslator
	host string
	ecr  config.ECR
}

func (e *ecrBuilder) check() error {
	c := config.Config{TargetRegistry: e.host, TargetProvider: &config.TargetProvider{ECR: &e.ecr}}
	return c.Validate()
}

// set applies fn and keeps it if the result validates; otherwise it
// reports the option as not imported, with image-swapper's reason.
func (e *ecrBuilder) set(line int, path string, fn func(*config.ECR)) bool {
	before := e.ecr
	before.Tags = append([]config.Tag(nil), e.ecr.Tags...)
	fn(&e.ecr)
	if err := e.check(); err != nil {
		e.ecr = before
		e.t.fs.add(line, path, fmt.Sprintf("image-swapper refuses it (%v); not imported", oneLine(err)))
		return false
	}
	return true
}

// options translates target.aws.ecrOptions (pkg/config/config.go
// ECROptions) with k8s-image-swapper's defaults (SetViperDefaults): tag
// mutability MUTABLE, scan on push on, AES256 encryption. image-swapper's
// own defaults differ only in scanOnPush, which is therefore always
// written.
func (e *ecrBuilder) options(om *ymap) {
	scan := true
	defer func() { e.ecr.ScanOnPush = scan }()
	if om == nil {
		return
	}
	const path = "target.aws.ecrOptions"
	if v, l := om.get("accessPolicy"); v != nil {
		e.policy(v, l, path+".accessPolicy", func(c *config.ECR, s string) { c.AccessPolicy = s })
	}
	if v, l := om.get("lifecyclePolicy"); v != nil {
		e.policy(v, l, path+".lifecyclePolicy", func(c *config.ECR, s string) { c.LifecyclePolicy = s })
	}
	if v, l := om.get("tags"); v != nil {
		if tags, ok := e.tags(v, l, path+".tags"); ok && len(tags) > 0 {
			e.set(l, path+".tags", func(c *config.ECR) { c.Tags = tags })
		}
	}
	if v, l := om.get("imageTagMutability"); v != nil {
		if s := scalar(v); s != "" {
			e.set(l, path+".imageTagMutability", func(c *config.ECR) { c.ImageTagMutability = s })
		}
	}
	if v, l := om.get("imageScanningConfiguration"); v != nil && v.ShortTag() != "!!null" {
		sm, err := newYmap(v, path+".imageScanningConfiguration")
		if v.Kind != yaml.MappingNode || err != nil {
			e.t.fs.add(l, path+".imageScanningConfiguration", "not a mapping; not imported (scanOnPush stays on, k8s-image-swapper's default)")
		} else {
			if s, sl := sm.get("imageScanOnPush"); s != nil {
				if b, ok := yamlBool(s); ok {
					scan = b
				} else {
					e.t.fs.add(sl, path+".imageScanningConfiguration.imageScanOnPush", "not true or false; not imported (scanOnPush stays on, k8s-image-swapper's default)")
				}
			}
			unknownKeys(e.t, sm)
		}
	}
	if v, l := om.get("encryptionConfiguration"); v != nil && v.ShortTag() != "!!null" {
		e.encryption(v, l, path+".encryptionConfiguration")
	}
	unknownKeys(e.t, om)
}

// policy reads a JSON policy document, which k8s-image-swapper takes as
// a string.
func (e *ecrBuilder) policy(v *yaml.Node, line int, path string, fn func(*config.ECR, string)) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		if v.ShortTag() != "!!null" {
			e.t.fs.add(line, path, "not a string holding a JSON policy document, which k8s-image-swapper needs; not imported")
		}
		return
	}
	if strings.TrimSpace(v.Value) == "" {
		return
	}
	if e.set(line, path, func(c *config.ECR) { fn(c, v.Value) }) {
		e.t.fs.add(line, path, "imported; k8s-image-swapper set it only on the repositories it created, image-swapper also re-applies it to ECR repositories that already exist")
	}
}

// tags reads a list of {key, value}.
func (e *ecrBuilder) tags(v *yaml.Node, line int, path string) ([]config.Tag, bool) {
	if v.ShortTag() == "!!null" {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		e.t.fs.add(line, path, "not a list of {key, value}; not imported")
		return nil, false
	}
	var out []config.Tag
	for i, item := range v.Content {
		item = resolve(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		im, err := newYmap(item, ipath)
		if item.Kind != yaml.MappingNode || err != nil {
			e.t.fs.add(item.Line, ipath, "not a {key, value} mapping; not imported")
			continue
		}
		k, _ := im.get("key")
		val, _ := im.get("value")
		unknownKeys(e.t, im)
		out = append(out, config.Tag{Key: scalar(k), Value: scalar(val)})
	}
	return out, true
}

// encryption reads encryptionType and kmsKey. k8s-image-swapper sends the
// key only with encryptionType KMS.
func (e *ecrBuilder) encryption(v *yaml.Node, line int, path string) {
	em, err := newYmap(v, path)
	if v.Kind != yaml.MappingNode || err != nil {
		e.t.fs.add(line, path, "not a mapping; not imported (repositories are encrypted with AES256, k8s-image-swapper's default)")
		return
	}
	typ, tl := em.get("encryptionType")
	key, kl := em.get("kmsKey")
	unknownKeys(e.t, em)
	kind := scalar(typ)
	if kind == "" {
		kind = "AES256"
	}
	if kind != "KMS" {
		if scalar(key) != "" {
			e.t.fs.add(kl, path+".kmsKey", fmt.Sprintf("k8s-image-swapper uses kmsKey only with encryptionType KMS, and this is %s; not imported", kind))
		}
		if kind != "AES256" {
			e.set(tl, path+".encryptionType", func(c *config.ECR) { c.EncryptionType = kind })
		}
		return
	}
	e.set(tl, path, func(c *config.ECR) { c.EncryptionType, c.KMSKey = "KMS", scalar(key) })
}

// unknownKeys reports the keys of m not read, which k8s-image-swapper
// ignores.
func unknownKeys(t *kisTranslator, m *ymap) {
	m.rest(func(key string, l int, _ *yaml.Node) {
		t.fs.add(l, join(m.path, key), "k8s-image-swapper does not know this key and ignores it; not imported")
	})
}

// gcpTarget reads target.gcp: the Artifact Registry host and path, and a
// function that writes targetProvider.artifactRegistry once the host is
// known to be valid.
func (t *kisTranslator) gcpTarget(n *yaml.Node, line int) (string, func(string), error) {
	if n == nil || n.Kind != yaml.MappingNode {
		return "", nil, fmt.Errorf("importer: target.gcp (location, projectId, repositoryId) is required for an Artifact Registry target")
	}
	m, err := newYmap(n, "target.gcp")
	if err != nil {
		return "", nil, err
	}
	loc, _ := m.get("location")
	project, _ := m.get("projectId")
	repo, _ := m.get("repositoryId")
	if scalar(loc) == "" || scalar(project) == "" || scalar(repo) == "" {
		return "", nil, fmt.Errorf("importer: line %d: target.gcp needs location, projectId and repositoryId, from which k8s-image-swapper builds LOCATION-docker.pkg.dev/PROJECT/REPOSITORY", line)
	}
	unknownKeys(t, m)
	host := scalar(loc) + "-docker.pkg.dev/" + scalar(project) + "/" + scalar(repo)
	provider := func(host string) {
		ar := &config.ArtifactRegistry{Project: scalar(project), Location: scalar(loc), Repository: scalar(repo)}
		c := config.Config{TargetRegistry: host, TargetProvider: &config.TargetProvider{ArtifactRegistry: ar}}
		if err := c.Validate(); err != nil {
			t.fs.add(line, "target.gcp", fmt.Sprintf("image-swapper cannot use this Artifact Registry repository (%v); targetProvider.artifactRegistry is not written, so the repository must exist before images are copied", oneLine(err)))
			return
		}
		t.cfg.TargetProvider = &config.TargetProvider{ArtifactRegistry: ar}
	}
	return host, provider, nil
}
