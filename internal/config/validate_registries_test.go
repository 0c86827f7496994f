package config

import (
	"strings"
	"testing"
)

func TestValidateRegistriesReportsEachProblemWithItsPath(t *testing.T) {
	ecr := func() *ECR { return &ECR{Region: "us-east-1", AccountID: "123456789012"} }
	tests := []spoilCase{
		// mirroring.platforms
		{"a platform needs an architecture", func(c *Config) { c.Mirroring.Platforms = []string{"linux"} },
			`mirroring.platforms[0]: "linux" must be os/architecture[/variant] in lower case, e.g. linux/amd64 or linux/arm64/v8`},
		{"a platform is lower case", func(c *Config) { c.Mirroring.Platforms = []string{"linux/AMD64"} },
			`mirroring.platforms[0]: "linux/AMD64" must be os/architecture[/variant] in lower case, e.g. linux/amd64 or linux/arm64/v8`},
		{"a platform has at most a variant", func(c *Config) { c.Mirroring.Platforms = []string{"linux/arm/v7/x"} },
			`mirroring.platforms[0]: "linux/arm/v7/x" must be os/architecture[/variant] in lower case, e.g. linux/amd64 or linux/arm64/v8`},
		{"a platform is listed once", func(c *Config) { c.Mirroring.Platforms = []string{"linux/amd64", "linux/arm64", "linux/amd64"} },
			`mirroring.platforms[2]: "linux/amd64" is already listed at mirroring.platforms[0]`},

		// registries keys and endpoints
		{"a key is a registry host", func(c *Config) { c.Registries = map[string]RegistryAccess{"https://quay.io": {}} },
			`registries["https://quay.io"]: "https://quay.io" is not a registry host: a registry is a host with an optional port and contains no '/'`},
		{"Docker Hub is docker.io", func(c *Config) { c.Registries = map[string]RegistryAccess{"index.docker.io": {}} },
			`registries["index.docker.io"]: "index.docker.io" is Docker Hub; write the key as "docker.io"`},
		{"two spellings of one host", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"Quay.io": {}, "quay.io": {}}
		}, `registries["quay.io"]: names the same registry as registries["Quay.io"]`},
		{"an endpoint is a URL", func(c *Config) { c.Registries = map[string]RegistryAccess{"docker.io": {Endpoint: "127.0.0.1:5001"}} },
			`registries["docker.io"].endpoint: "127.0.0.1:5001" must be a URL with a scheme and a host, e.g. https://mirror.example.com`},
		{"an http endpoint needs insecure", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"docker.io": {Endpoint: "http://127.0.0.1:5001"}}
		}, `registries["docker.io"].endpoint: "http://127.0.0.1:5001" is plain HTTP; set registries["docker.io"].insecure: true to allow it`},
		{"an endpoint holds no credentials", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"docker.io": {Endpoint: "https://user:pw@mirror.example.com"}}
		}, `registries["docker.io"].endpoint: must not contain credentials; use registries["docker.io"].credentials`},
		{"an endpoint has no query", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"docker.io": {Endpoint: "https://mirror.example.com/?ns=docker.io"}}
		}, `registries["docker.io"].endpoint: "https://mirror.example.com/?ns=docker.io" must not have a query or fragment`},

		// credentials
		{"credentials name a source", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"ghcr.io": {Pull: &Credentials{}}}
		}, `registries["ghcr.io"].pull: names no source; set dockerConfig, secret, or usernameEnv and passwordEnv`},
		{"credentials name one source", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"ghcr.io": {Credentials: &Credentials{DockerConfig: "/etc/docker/config.json", Secret: "ns/regcred"}}}
		}, `registries["ghcr.io"].credentials: sets dockerConfig and secret; use one source`},
		{"a secret is namespace/name", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"ghcr.io": {Push: &Credentials{Secret: "regcred"}}}
		}, `registries["ghcr.io"].push.secret: "regcred" must be namespace/name of a kubernetes.io/dockerconfigjson Secret`},
		{"a username needs a password", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"ghcr.io": {Pull: &Credentials{UsernameEnv: "GHCR_USER"}}}
		}, `registries["ghcr.io"].pull.passwordEnv: required when usernameEnv is set`},
		{"a variable name is checked", func(c *Config) {
			c.Registries = map[string]RegistryAccess{"ghcr.io": {Pull: &Credentials{UsernameEnv: "GHCR_USER", PasswordEnv: "GHCR-TOKEN"}}}
		}, `registries["ghcr.io"].pull.passwordEnv: "GHCR-TOKEN" is not an environment variable name`},

		// targetProvider
		{"a provider is chosen", func(c *Config) { c.TargetProvider = &TargetProvider{} },
			`targetProvider: set ecr or artifactRegistry, or remove targetProvider`},
		{"one provider at most", func(c *Config) {
			c.TargetProvider = &TargetProvider{ECR: ecr(), ArtifactRegistry: &ArtifactRegistry{Project: "my-project", Location: "us", Repository: "r"}}
		}, `targetProvider: sets ecr and artifactRegistry; at most one provider`},
		{"ECR needs a region", func(c *Config) {
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: &ECR{AccountID: "123456789012"}}
		}, `targetProvider.ecr.region: required, e.g. us-east-1`},
		{"an ECR account is 12 digits", func(c *Config) {
			c.TargetProvider = &TargetProvider{ECR: &ECR{Region: "us-east-1", AccountID: "1234"}}
		}, `targetProvider.ecr.accountId: "1234" must be 12 digits`},
		{"an ECR region looks like one", func(c *Config) {
			c.TargetProvider = &TargetProvider{ECR: &ECR{Region: "US East", AccountID: "123456789012"}}
		}, `targetProvider.ecr.region: "US East" is not an AWS region, e.g. us-east-1`},
		{"ECR's target is its registry", func(c *Config) {
			c.TargetRegistry = "registry.example.com"
			c.TargetProvider = &TargetProvider{ECR: ecr()}
		}, `targetProvider.ecr: targetRegistry "registry.example.com" is not the ECR registry of accountId 123456789012 in us-east-1; expected 123456789012.dkr.ecr.us-east-1.amazonaws.com`},
		{"an ECR role is a role ARN", func(c *Config) {
			e := ecr()
			e.AssumeRoleARN = "ecr-pusher"
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: e}
		}, `targetProvider.ecr.assumeRoleArn: "ecr-pusher" is not an IAM role ARN, e.g. arn:aws:iam::123456789012:role/ecr-mirror`},
		{"ECR tag mutability is upper case", func(c *Config) {
			e := ecr()
			e.ImageTagMutability = "immutable"
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: e}
		}, `targetProvider.ecr.imageTagMutability: "immutable" is not one of MUTABLE, IMMUTABLE`},
		{"a KMS key needs KMS encryption", func(c *Config) {
			e := ecr()
			e.KMSKey = "arn:aws:kms:us-east-1:123456789012:key/x"
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: e}
		}, `targetProvider.ecr.kmsKey: only used when encryptionType is KMS or KMS_DSSE`},
		{"ECR tag keys are unique", func(c *Config) {
			e := ecr()
			e.Tags = []Tag{{Key: "team", Value: "a"}, {Key: "team", Value: "b"}}
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: e}
		}, `targetProvider.ecr.tags[1].key: "team" is already the key of targetProvider.ecr.tags[0]`},
		{"a lifecycle policy is JSON", func(c *Config) {
			e := ecr()
			e.LifecyclePolicy = "rules: []"
			c.TargetRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
			c.TargetProvider = &TargetProvider{ECR: e}
		}, `targetProvider.ecr.lifecyclePolicy: must be a JSON object: invalid character 'r' looking for beginning of value`},
		{"a provider needs a target", func(c *Config) {
			c.TargetRegistry, c.SourceRegistries = "", nil
			c.TargetProvider = &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Project: "my-project", Location: "us", Repository: "mirror"}}
		}, `targetProvider: creates repositories in targetRegistry, which is not set`},
		{"Artifact Registry needs a project", func(c *Config) {
			c.TargetProvider = &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Location: "us", Repository: "mirror"}}
		}, `targetProvider.artifactRegistry.project: required, e.g. my-project`},
		{"Artifact Registry repository ids are lower case", func(c *Config) {
			c.TargetProvider = &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Project: "my-project", Location: "us", Repository: "Mirror"}}
		}, `targetProvider.artifactRegistry.repository: "Mirror" is not a valid repository, e.g. mirror`},
		{"Artifact Registry's target is its repository", func(c *Config) {
			c.TargetRegistry = "us-docker.pkg.dev/my-project/other"
			c.TargetProvider = &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Project: "my-project", Location: "us", Repository: "mirror"}}
		}, `targetProvider.artifactRegistry: targetRegistry must be us-docker.pkg.dev/my-project/mirror or a path below it, where this repository serves images`},
	}
	checkSpoiled(t, tests)
}

func TestValidateRegistriesAcceptsWhatTheDocsShow(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a test registry for Docker Hub and credentials per direction", Config{
			SourceRegistries: []string{"docker.io", "ghcr.io"},
			TargetRegistry:   "registry.example.com/mirror",
			Mirroring:        Mirroring{Platforms: []string{"linux/amd64", "linux/arm64/v8"}, CopySignatures: true},
			Registries: map[string]RegistryAccess{
				"docker.io":            {Endpoint: "http://127.0.0.1:5001", Insecure: true},
				"ghcr.io":              {Pull: &Credentials{UsernameEnv: "GHCR_USER", PasswordEnv: "GHCR_TOKEN"}},
				"registry.example.com": {Push: &Credentials{Secret: "image-swapper/mirror-push"}, Pull: &Credentials{DockerConfig: "/var/run/secrets/pull/config.json"}},
				"localhost:5000":       {Insecure: true},
			},
		}},
		{"ECR with every setting", Config{
			SourceRegistries: []string{"docker.io"},
			TargetRegistry:   "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror",
			TargetProvider: &TargetProvider{ECR: &ECR{
				Region: "eu-west-1", AccountID: "123456789012",
				AssumeRoleARN:      "arn:aws:iam::123456789012:role/ecr-mirror",
				Tags:               []Tag{{Key: "owner", Value: "platform"}},
				ImageTagMutability: "IMMUTABLE", ScanOnPush: true,
				EncryptionType: "KMS", KMSKey: "arn:aws:kms:eu-west-1:123456789012:key/abc",
				AccessPolicy:    `{"Version":"2012-10-17","Statement":[]}`,
				LifecyclePolicy: `{"rules":[]}`,
			}},
		}},
		{"ECR in a GovCloud region", Config{
			TargetRegistry: "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
			TargetProvider: &TargetProvider{ECR: &ECR{Region: "us-gov-west-1", AccountID: "123456789012"}},
		}},
		{"Artifact Registry", Config{
			SourceRegistries: []string{"docker.io"},
			TargetRegistry:   "europe-west4-docker.pkg.dev/my-project/mirror",
			TargetProvider:   &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Project: "my-project", Location: "europe-west4", Repository: "mirror"}},
		}},
		{"Artifact Registry with a domain-scoped project", Config{
			TargetRegistry: "us-docker.pkg.dev/example.com/my-project/mirror/sub",
			TargetProvider: &TargetProvider{ArtifactRegistry: &ArtifactRegistry{Project: "example.com:my-project", Location: "us", Repository: "mirror"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateRegistriesReportsAllProblemsAtOnce(t *testing.T) {
	c := valid()
	c.Mirroring.Platforms = []string{"amd64"}
	c.Registries = map[string]RegistryAccess{"ghcr.io": {Endpoint: "ftp://x", Pull: &Credentials{}}}
	err := c.Validate()
	want := []string{
		`mirroring.platforms[0]: "amd64" must be os/architecture[/variant] in lower case, e.g. linux/amd64 or linux/arm64/v8`,
		`registries["ghcr.io"].endpoint: "ftp://x" must be a URL with a scheme and a host, e.g. https://mirror.example.com`,
		`registries["ghcr.io"].pull: names no source; set dockerConfig, secret, or usernameEnv and passwordEnv`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}
