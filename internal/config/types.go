// Package config holds image-swapper's configuration schema, its defaults and
// its validation. One YAML file configures the CLI and the webhook alike.
package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Config is the whole configuration file. The short form of the product's
// own example (sourceRegistries, targetRegistry, mirroring, security,
// policies) loads verbatim; rules, namespaces and workloads extend it.
type Config struct {
	// SourceRegistries lists the registries whose images are swapped to the
	// target by the default rule. Entries are registry hosts (with port, if
	// any) or wildcards such as "*.gcr.io" or "*".
	SourceRegistries []string `json:"sourceRegistries,omitempty"`
	// TargetRegistry is where mirrored images live: a host, optionally with
	// a port and a path prefix ("registry.example.com/mirror").
	TargetRegistry string `json:"targetRegistry,omitempty"`
	// Mode is the global enforcement mode for denials: enforce (default),
	// warn or audit.
	Mode Mode `json:"mode,omitempty"`
	// DryRun decides, records, logs and warns as usual but changes nothing:
	// no Pod is patched and no image is denied. Metrics and the ledger say
	// what would have happened.
	DryRun bool `json:"dryRun,omitempty"`

	Mirroring  Mirroring  `json:"mirroring,omitempty"`
	Security   Security   `json:"security,omitempty"`
	Policies   Policies   `json:"policies,omitempty"`
	Rules      []Rule     `json:"rules,omitempty"`
	Namespaces Namespaces `json:"namespaces,omitempty"`
	Workloads  Workloads  `json:"workloads,omitempty"`

	// Registries says how to reach each registry host and with which
	// credentials, keyed by the host as images name it ("docker.io",
	// "localhost:5000"). A host without an entry is reached over HTTPS
	// anonymously.
	Registries map[string]RegistryAccess `json:"registries,omitempty"`
	// TargetProvider creates repositories in targets that need it (ECR,
	// Artifact Registry); a plain OCI registry needs none.
	TargetProvider *TargetProvider `json:"targetProvider,omitempty"`
	// Store configures the ledger of admissions, copies and scans. serve
	// always records (in SQLite by default); CLI commands record only when
	// the section is present.
	Store *Store `json:"store,omitempty"`
}

// Store configures the ledger database.
type Store struct {
	// Driver is sqlite (default) or postgres.
	Driver string `json:"driver,omitempty"`
	// Path is the SQLite file (default
	// $XDG_STATE_HOME/image-swapper/state.db, else
	// ~/.local/state/image-swapper/state.db).
	Path string `json:"path,omitempty"`
	// DSNEnv names the environment variable holding the PostgreSQL DSN
	// (default IMAGE_SWAPPER_DATABASE_URL); DSNFile, when set, is a file
	// holding it instead. The DSN itself is never in the configuration.
	DSNEnv  string `json:"dsnEnv,omitempty"`
	DSNFile string `json:"dsnFile,omitempty"`
	// Retention is how long records are kept, such as 90d (the default)
	// or 36h.
	Retention string `json:"retention,omitempty"`
}

// Mode says what a denial does.
type Mode string

// The enforcement modes.
const (
	ModeEnforce Mode = "enforce" // reject the object
	ModeWarn    Mode = "warn"    // admit it with a warning
	ModeAudit   Mode = "audit"   // admit it and only record the verdict
)

// Action is what a rule does with a matching image.
type Action string

// The rule actions.
const (
	ActionSwap Action = "swap" // rewrite to the rule's target
	ActionKeep Action = "keep" // leave the image as it is
	ActionDeny Action = "deny" // refuse the image
)

// SwapPolicy says when an image is swapped relative to its mirroring.
type SwapPolicy string

// The swap policies; see the design's "Mirroring at admission".
const (
	SwapExists SwapPolicy = "exists" // swap only when the target has the image (default)
	SwapWait   SwapPolicy = "wait"   // copy and wait up to waitBudget, then behave as exists
	SwapAlways SwapPolicy = "always" // swap unconditionally (pull-through caches)
)

// Mirroring configures swapping and copying.
type Mirroring struct {
	// Enabled turns swapping on; it defaults to true. With false, only the
	// gate (allow/deny, deny rules) applies.
	Enabled *bool `json:"enabled,omitempty"`
	// NamespaceSelector limits swapping to namespaces whose labels match.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ObjectSelector limits swapping to objects whose labels match.
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
	// Condition is a CEL expression that must be true for swapping to apply.
	Condition string `json:"condition,omitempty"`
	// Swap is the swap policy at admission: exists (default), wait, always.
	Swap SwapPolicy `json:"swap,omitempty"`
	// WaitBudget bounds how long swap: wait waits for a copy (default 5s).
	WaitBudget *metav1.Duration `json:"waitBudget,omitempty"`
	// PinDigest makes swapped references name the mirrored digest.
	PinDigest bool `json:"pinDigest,omitempty"`
	// Platforms limits copies to these platforms ("linux/amd64",
	// "linux/arm64/v8"). A filtered copy writes a new index, so the target
	// digest then differs from the source's. Empty copies every platform.
	Platforms []string `json:"platforms,omitempty"`
	// CopySignatures also copies cosign signatures, attestations and SBOMs
	// (sha256-<hex>.sig/.att/.sbom tags) and OCI referrers.
	CopySignatures bool `json:"copySignatures,omitempty"`
	// Overwrite lets a copy move an existing target tag that points to
	// another digest; by default that is an error.
	Overwrite bool `json:"overwrite,omitempty"`
	// Concurrency bounds how many copies run at once (default 4).
	Concurrency int `json:"concurrency,omitempty"`
	// PresenceCache says how long the target registry's answers to "do you
	// have this image?" are believed before it is asked again.
	PresenceCache PresenceCache `json:"presenceCache,omitempty"`
	// Sync keeps mirrored tags up to date with their sources.
	Sync Sync `json:"sync,omitempty"`
}

// PresenceCache bounds how long the mirror's existence answers are cached:
// longer saves HEAD requests, shorter notices sooner that an image was
// deleted from the target (until then, Pods are swapped to it and fail to
// pull).
type PresenceCache struct {
	// PositiveTTL is how long "the target has it" is believed (default
	// 30s); 0s asks the registry at every admission.
	PositiveTTL *metav1.Duration `json:"positiveTTL,omitempty"`
	// NegativeTTL is how long "the target lacks it" is believed (default
	// 10s); 0s asks the registry at every admission.
	NegativeTTL *metav1.Duration `json:"negativeTTL,omitempty"`
}

// Security configures vulnerability scanning.
type Security struct {
	Scanning Scanning `json:"scanning,omitempty"`
}

// Scanning configures the vulnerability gate: which scanner runs, how, and
// which findings fail an image. See internal/scan and
// docs/configuration.md for what is wired where.
type Scanning struct {
	Enabled bool `json:"enabled,omitempty"`
	// Provider is the scanner whose JSON is read: trivy or grype.
	Provider string `json:"provider,omitempty"`
	// Command is the scanner's argv; image@digest is appended. It is run
	// directly, never through a shell. Default per provider (see
	// Scanning.EffectiveCommand).
	Command []string `json:"command,omitempty"`
	// Timeout bounds one scanner run (default 5m).
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Concurrency bounds how many scans run at once (default 2).
	Concurrency int `json:"concurrency,omitempty"`
	// Platforms are the platforms of an index that are scanned, those
	// present (default linux/amd64 and linux/arm64).
	Platforms []string `json:"platforms,omitempty"`
	// FailOnCritical denies images with a CRITICAL finding.
	FailOnCritical bool `json:"failOnCritical,omitempty"`
	// Severity denies images with a finding at or above it (UNKNOWN,
	// LOW, MEDIUM, HIGH, CRITICAL); empty sets no severity threshold.
	Severity string `json:"severity,omitempty"`
	// MaxCVSS denies images with a finding whose CVSS v3 base score is
	// above it.
	MaxCVSS *float64 `json:"maxCVSS,omitempty"`
	// IgnoreUnfixed: findings without a fixed version never deny.
	IgnoreUnfixed bool `json:"ignoreUnfixed,omitempty"`
	// Pending says what admission does while an image has no verdict:
	// deny (default), warn or allow.
	Pending PendingPolicy `json:"pending,omitempty"`
	// RescanAfter is the age after which a verdict is refreshed in the
	// background (default 24h).
	RescanAfter *metav1.Duration `json:"rescanAfter,omitempty"`
	// SkipImages are wildcards of images that are never scanned and
	// never denied by the gate.
	SkipImages []string `json:"skipImages,omitempty"`
	// Ignore lists exceptions for single vulnerabilities.
	Ignore []IgnoreEntry `json:"ignore,omitempty"`
	// VEX lists OpenVEX documents (file paths) whose not_affected
	// statements ignore findings.
	VEX []string `json:"vex,omitempty"`
}

// PendingPolicy says what admission does with an image that has no verdict
// yet.
type PendingPolicy string

// The pending policies.
const (
	PendingDeny  PendingPolicy = "deny"  // deny with "being scanned; retry"
	PendingWarn  PendingPolicy = "warn"  // admit with a warning
	PendingAllow PendingPolicy = "allow" // admit
)

// IgnoreEntry is an exception: findings of one vulnerability id, in the
// images and namespaces given, do not fail an image until it expires.
type IgnoreEntry struct {
	// ID is the vulnerability id exactly as the scanner reports it.
	ID string `json:"id"`
	// Images are wildcards of the images it applies to; empty means all.
	Images []string `json:"images,omitempty"`
	// Namespaces are wildcards of the namespaces it applies to; empty
	// means all.
	Namespaces []string `json:"namespaces,omitempty"`
	// Expires is a date, YYYY-MM-DD: the entry applies through the end of
	// that day, UTC.
	Expires string `json:"expires"`
	// Reason says why the finding is acceptable (a ticket, an analysis).
	Reason string `json:"reason"`
}

// Policies holds the allow and deny lists.
type Policies struct {
	// AllowList wildcards: an image passes when its original or swapped
	// reference (or their repository) matches one. With a non-empty list,
	// an image that is neither swapped nor allowed is denied.
	AllowList []string `json:"allowList,omitempty"`
	// DenyList wildcards: an image is denied when its original or swapped
	// reference (or their repository) matches one. Deny wins over allow.
	DenyList []string `json:"denyList,omitempty"`
	// Mode overrides the global mode for list verdicts.
	Mode Mode `json:"mode,omitempty"`
}

// Rule is an explicit swap rule. Exactly one of Image, Repository and
// Registry says what it matches; a rule with none of them is a default rule.
// Precedence: exact image, then repository glob, then registry, then default;
// within one tier the first matching rule in file order wins.
type Rule struct {
	// Name identifies the rule in explanations and errors; defaults to
	// "rules[i]".
	Name string `json:"name,omitempty"`
	// Image matches one exact normalised reference ("nginx" means
	// docker.io/library/nginx:latest).
	Image string `json:"image,omitempty"`
	// Repository is a wildcard over the normalised repository
	// ("docker.io/bitnami/*").
	Repository string `json:"repository,omitempty"`
	// Registry matches the registry host (wildcards allowed: "*.gcr.io").
	Registry string `json:"registry,omitempty"`

	// Action is swap (the default when Target is set), keep or deny.
	Action Action `json:"action,omitempty"`
	// Target is the swap destination template; see rules.Template for the
	// placeholders. The tag and digest of the original are appended unless
	// the template of an exact-image rule names its own.
	Target string `json:"target,omitempty"`
	// Mode overrides the global mode for this rule's denials.
	Mode Mode `json:"mode,omitempty"`
	// Message is shown to the user when the rule denies an image.
	Message string `json:"message,omitempty"`

	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	ObjectSelector    *metav1.LabelSelector `json:"objectSelector,omitempty"`
	// Condition is a CEL expression over image, namespace and object.
	Condition string `json:"condition,omitempty"`
}

// Namespaces says which namespaces image-swapper leaves alone.
// kube-system and the server's own namespace are always excluded unless
// named in Include.
type Namespaces struct {
	// Exclude names further namespaces (wildcards allowed) to leave alone.
	Exclude []string `json:"exclude,omitempty"`
	// Include re-enables namespaces that are excluded by default.
	Include []string `json:"include,omitempty"`
}

// Workloads extends where images are found.
type Workloads struct {
	// Custom describes custom resource kinds that carry images.
	Custom []CustomKind `json:"custom,omitempty"`
}

// CustomKind locates images in a kind image-swapper does not know, with
// JSONPath expressions, as reimage users write them.
type CustomKind struct {
	// Kind is a regular expression over the object's kind (anchored).
	Kind string `json:"kind"`
	// APIVersion is a regular expression over apiVersion (anchored);
	// empty matches any.
	APIVersion string `json:"apiVersion,omitempty"`
	// Images lists JSONPath expressions selecting image strings, e.g.
	// "{.spec.image}" or ".spec.components[*].image".
	Images []string `json:"images"`
}

// RegistryAccess says how one registry host is reached.
type RegistryAccess struct {
	// Endpoint serves the host from another address: a pull-through cache,
	// an air-gapped mirror or a test registry ("http://127.0.0.1:5001").
	Endpoint string `json:"endpoint,omitempty"`
	// Insecure allows plain HTTP and unverified TLS. Never implied.
	Insecure bool `json:"insecure,omitempty"`
	// Credentials are used for pulling and pushing unless Pull or Push
	// say otherwise.
	Credentials *Credentials `json:"credentials,omitempty"`
	// Pull credentials, for reading images from this host (as a source,
	// and when checking that the target has an image). Without them,
	// reads use Credentials, then Push.
	Pull *Credentials `json:"pull,omitempty"`
	// Push credentials, for writing images to this host as the target.
	// Without them, writes use Credentials.
	Push *Credentials `json:"push,omitempty"`
}

// Credentials name where a secret comes from; the secret itself is never
// in the config file.
type Credentials struct {
	// DockerConfig is the path of a Docker config.json.
	DockerConfig string `json:"dockerConfig,omitempty"`
	// Secret is "namespace/name" of a kubernetes.io/dockerconfigjson Secret.
	Secret string `json:"secret,omitempty"`
	// UsernameEnv and PasswordEnv name environment variables that hold a
	// username and password (or token).
	UsernameEnv string `json:"usernameEnv,omitempty"`
	PasswordEnv string `json:"passwordEnv,omitempty"`
}

// TargetProvider configures a target registry that needs repositories
// created before a push. At most one of its fields is set.
type TargetProvider struct {
	ECR              *ECR              `json:"ecr,omitempty"`
	ArtifactRegistry *ArtifactRegistry `json:"artifactRegistry,omitempty"`
}

// ECR configures repository creation in AWS Elastic Container Registry.
type ECR struct {
	Region    string `json:"region"`
	AccountID string `json:"accountId"`
	// AssumeRoleARN is a role to assume before calling ECR.
	AssumeRoleARN string `json:"assumeRoleArn,omitempty"`
	// Tags are set on created repositories.
	Tags []Tag `json:"tags,omitempty"`
	// ImageTagMutability is MUTABLE (default) or IMMUTABLE.
	ImageTagMutability string `json:"imageTagMutability,omitempty"`
	ScanOnPush         bool   `json:"scanOnPush,omitempty"`
	// EncryptionType is AES256 (default), KMS or KMS_DSSE, with KMSKey.
	EncryptionType string `json:"encryptionType,omitempty"`
	KMSKey         string `json:"kmsKey,omitempty"`
	// AccessPolicy and LifecyclePolicy are JSON policy documents applied
	// to created repositories, and re-applied to existing ones.
	AccessPolicy    string `json:"accessPolicy,omitempty"`
	LifecyclePolicy string `json:"lifecyclePolicy,omitempty"`
}

// Tag is a key/value tag on a cloud resource.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ArtifactRegistry configures Google Artifact Registry: images go into one
// Docker-format repository, with the image path below it.
type ArtifactRegistry struct {
	Project    string `json:"project"`
	Location   string `json:"location"`
	Repository string `json:"repository"`
}
