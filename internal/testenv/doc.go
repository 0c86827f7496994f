// Package testenv is the harness that tests in several packages share:
// the rule for missing tools (skip, but fail under CI=true), the
// image-swapper binary built once per test process, child processes with
// their output, Debian's docker-registry run out of process, a
// kube-apiserver with etcd started by envtest, and Trivy run offline
// (locally or as a server) against a synthetic vulnerability database
// and synthetic Alpine images.
//
// Only _test.go files import it. It imports controller-runtime's envtest,
// which the image-swapper binary must not link: keep it out of every
// non-test file (`go list -deps ./cmd/image-swapper` shows no
// controller-runtime).
package testenv
