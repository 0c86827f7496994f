// Package policyapi is the policy.image-swapper.io/v1alpha1 API: the
// ClusterImagePolicy and ImagePolicy objects through which the cluster's
// administrators and each namespace's administrators manage policy with
// Kubernetes RBAC, how they are merged with the configuration file
// (Merge), and the informer that keeps the webhook's view of them current
// and writes their status (Watcher).
//
// The objects are read with the dynamic client and converted with
// runtime.DefaultUnstructuredConverter: no generated clientset, lister or
// scheme registration, and a converted object is a fresh value, so the
// informer's cache is never shared with the code that reads it (the
// reason DeepCopy exists in generated APIs). The CRD manifests, with
// their structural schemas and CEL rules, are in the Helm chart
// (deploy/helm/image-swapper/files/crds); TestCRDSchemasMatchTypes keeps
// them in step with these types.
package policyapi

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/image-swapper/image-swapper/internal/config"
)

// The API group and version.
const (
	Group   = "policy.image-swapper.io"
	Version = "v1alpha1"
)

// The kinds.
const (
	KindClusterImagePolicy = "ClusterImagePolicy"
	KindImagePolicy        = "ImagePolicy"
)

// The resources, for the dynamic client and informers.
var (
	ClusterImagePolicies = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "clusterimagepolicies"}
	ImagePolicies        = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "imagepolicies"}
)

// APIVersion is Group/Version, as objects spell it.
const APIVersion = Group + "/" + Version

// ClusterImagePolicy is cluster-wide policy, merged with the configuration
// file: it holds what the file's rules, policies and security sections
// hold, and may let namespaces add vulnerability exceptions. Cluster
// administrators manage it.
type ClusterImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterImagePolicySpec `json:"spec"`
	Status Status                 `json:"status,omitempty"`
}

// ClusterImagePolicySpec is what a ClusterImagePolicy says.
type ClusterImagePolicySpec struct {
	// Rules are swap, keep and deny rules as in the file's rules; they
	// come after the file's, so within a precedence tier the file's win.
	// An unnamed rule is named "ClusterImagePolicy/NAME/rules[i]", a
	// named one "ClusterImagePolicy/NAME/RULE".
	Rules []config.Rule `json:"rules,omitempty"`
	// Policies are allow and deny list entries added to the file's; the
	// stricter mode of the file's and this one's applies to the lists.
	Policies config.Policies `json:"policies,omitempty"`
	// Security holds the vulnerability gate's policy: thresholds, images
	// skipped and exceptions. How scans run (enabled, provider, command
	// and the like) stays in the configuration file.
	Security SecurityPolicy `json:"security,omitempty"`
	// AllowNamespaceExceptions lets ImagePolicies add vulnerability
	// exceptions for their namespace. Without a ClusterImagePolicy that
	// sets it, their exceptions are ignored, and their status says so.
	AllowNamespaceExceptions bool `json:"allowNamespaceExceptions,omitempty"`
}

// SecurityPolicy is the policy part of the file's security section.
type SecurityPolicy struct {
	Scanning ScanningPolicy `json:"scanning,omitempty"`
}

// ScanningPolicy is the policy part of security.scanning. Thresholds
// merge with the file's to the stricter; lists are added to the file's.
type ScanningPolicy struct {
	// FailOnCritical denies images with a CRITICAL finding.
	FailOnCritical bool `json:"failOnCritical,omitempty"`
	// Severity denies images with a finding at or above it.
	Severity string `json:"severity,omitempty"`
	// MaxCVSS denies images with a finding whose CVSS v3 base score is
	// above it.
	MaxCVSS *float64 `json:"maxCVSS,omitempty"`
	// SkipImages are wildcards of images never scanned nor denied by the
	// gate.
	SkipImages []string `json:"skipImages,omitempty"`
	// Ignore lists exceptions, as security.scanning.ignore does.
	Ignore []config.IgnoreEntry `json:"ignore,omitempty"`
}

// ImagePolicy is one namespace's policy. It can only tighten the
// cluster's: more denied images, fewer allowed ones, a stricter mode. It
// also picks the namespace's swap policy, and may add vulnerability
// exceptions where a ClusterImagePolicy allows namespace exceptions.
// Namespace administrators manage it.
type ImagePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImagePolicySpec `json:"spec"`
	Status Status          `json:"status,omitempty"`
}

// ImagePolicySpec is what an ImagePolicy says.
type ImagePolicySpec struct {
	// AllowList narrows what may run in the namespace: every image must
	// match one of its entries (its original or its swapped reference),
	// in addition to passing the cluster's allowList. Being swapped does
	// not pass it. Empty narrows nothing.
	AllowList []string `json:"allowList,omitempty"`
	// DenyList entries deny images in the namespace, as the file's
	// denyList does.
	DenyList []string `json:"denyList,omitempty"`
	// Mode is the least strict mode any verdict in the namespace has:
	// audit < warn < enforce. A verdict that is stricter already stays.
	Mode config.Mode `json:"mode,omitempty"`
	// Swap is the namespace's swap policy: exists, wait or always.
	Swap config.SwapPolicy `json:"swap,omitempty"`
	// Exceptions ignore single vulnerabilities in the namespace until they
	// expire, where a ClusterImagePolicy allows namespace exceptions.
	Exceptions []Exception `json:"exceptions,omitempty"`
}

// Exception is a vulnerability exception for one namespace: an ignore
// entry whose namespace is the ImagePolicy's.
type Exception struct {
	// ID is the vulnerability id exactly as the scanner reports it.
	ID string `json:"id"`
	// Images are wildcards of the images it applies to; empty means all.
	Images []string `json:"images,omitempty"`
	// Expires is a date, YYYY-MM-DD: the exception applies through the
	// end of that day, UTC. Required.
	Expires string `json:"expires"`
	// Reason says why the finding is acceptable. Required.
	Reason string `json:"reason"`
}

// Status is what the server says of a policy object.
type Status struct {
	// ObservedGeneration is the generation the conditions describe.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted (the object is valid and merged), Ready (it is
	// in force) and, for an ImagePolicy with exceptions,
	// ExceptionsAccepted.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// The condition types.
const (
	ConditionAccepted           = "Accepted"
	ConditionReady              = "Ready"
	ConditionExceptionsAccepted = "ExceptionsAccepted"
)

// The condition reasons.
const (
	ReasonValid    = "Valid"
	ReasonInvalid  = "Invalid"
	ReasonConflict = "Conflict"
	ReasonInForce  = "InForce"
	// ReasonNotAccepted: Ready is false because Accepted is.
	ReasonNotAccepted = "NotAccepted"
	// ReasonAllowedByClusterPolicy: a ClusterImagePolicy sets
	// allowNamespaceExceptions.
	ReasonAllowedByClusterPolicy = "AllowedByClusterPolicy"
	// ReasonNamespaceExceptionsNotAllowed: no ClusterImagePolicy sets
	// allowNamespaceExceptions, so the exceptions are ignored.
	ReasonNamespaceExceptionsNotAllowed = "NamespaceExceptionsNotAllowed"
	// ReasonExpired: every exception has expired.
	ReasonExpired = "Expired"
)
