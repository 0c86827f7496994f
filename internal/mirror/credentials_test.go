package mirror

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/reference"
	"github.com/image-swapper/image-swapper/internal/registry"
)

// userKeychain stands for one Pod's imagePullSecrets.
type userKeychain struct{ user string }

func (k *userKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: "pw"}, nil
}

// authRegistry accepts copies pulled with the user it wants, records the
// keychain of every Copy, and can hold the first Copy until released.
type authRegistry struct {
	want    string
	started chan struct{} // receives once per Copy
	release chan struct{} // closed to let held copies go on; nil holds none

	mu    sync.Mutex
	pulls []authn.Keychain
}

func (r *authRegistry) Exists(context.Context, reference.Reference) (registry.Descriptor, bool, error) {
	return registry.Descriptor{}, false, nil
}

func (r *authRegistry) Copy(ctx context.Context, src, dst reference.Reference, opts registry.CopyOptions) (registry.CopyResult, error) {
	r.mu.Lock()
	r.pulls = append(r.pulls, opts.PullKeychain)
	r.mu.Unlock()
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.release != nil {
		<-r.release
	}
	if k, ok := opts.PullKeychain.(*userKeychain); !ok || k.user != r.want {
		return registry.CopyResult{}, &registry.StatusError{StatusCode: 401, Message: "authentication required"}
	}
	return registry.CopyResult{Digest: "sha256:" + dst.Tag, Copied: true}, nil
}

func (r *authRegistry) users() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.pulls {
		if k, ok := p.(*userKeychain); ok {
			out = append(out, k.user)
		} else {
			out = append(out, "")
		}
	}
	return out
}

func credentialRefs(t *testing.T) (src, dst reference.Reference) {
	t.Helper()
	src, err := reference.Parse("private.example.com/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	dst, err = reference.Parse("mirror.example.com/private.example.com/team/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	return src, dst
}

func TestEnsurePassesTheCallersCredentialsToTheCopy(t *testing.T) {
	tests := []struct {
		name    string
		opts    []RequestOption
		want    []string
		wantErr bool
	}{
		{"a caller with the right credentials gets the copy", []RequestOption{WithPullKeychain(&userKeychain{"alice"})}, []string{"alice"}, false},
		{"a caller with wrong credentials is refused once, not retried", []RequestOption{WithPullKeychain(&userKeychain{"bob"})}, []string{"bob"}, true},
		{"a caller without credentials copies anonymously", nil, []string{""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := &authRegistry{want: "alice"}
			svc := New(reg, Options{})
			defer svc.Close()
			src, dst := credentialRefs(t)
			_, err := svc.Ensure(t.Context(), src, dst, tt.opts...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Ensure() = %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr && !registry.Refused(err) {
				t.Errorf("Ensure() = %v, want the refusal", err)
			}
			if got := reg.users(); !equalStrings(got, tt.want) {
				t.Errorf("copies pulled as %q, want %q", got, tt.want)
			}
		})
	}
}

func TestARefusedCopyIsTriedWithTheCredentialsOfCallersWhoJoinedIt(t *testing.T) {
	reg := &authRegistry{want: "alice", started: make(chan struct{}, 4), release: make(chan struct{})}
	svc := New(reg, Options{})
	defer svc.Close()
	src, dst := credentialRefs(t)

	type outcome struct {
		res Result
		err error
	}
	first := make(chan outcome, 1)
	go func() {
		res, err := svc.Ensure(context.Background(), src, dst, WithPullKeychain(&userKeychain{"bob"}))
		first <- outcome{res, err}
	}()
	<-reg.started // bob's copy is running
	svc.Enqueue(src, dst, WithPullKeychain(&userKeychain{"alice"}))
	close(reg.release)

	got := <-first
	if got.err != nil {
		t.Fatalf("Ensure() = %v, want the copy made with the joined caller's credentials", got.err)
	}
	if got.res.Digest != "sha256:1.0" {
		t.Errorf("Ensure() = %+v, want digest sha256:1.0", got.res)
	}
	if users := reg.users(); !equalStrings(users, []string{"bob", "alice"}) {
		t.Errorf("copies pulled as %q, want bob's then alice's", users)
	}
}

func TestAFailedCopyIsNotRememberedSoTheNextCallerUsesItsOwnCredentials(t *testing.T) {
	reg := &authRegistry{want: "alice"}
	svc := New(reg, Options{})
	defer svc.Close()
	src, dst := credentialRefs(t)

	if _, err := svc.Ensure(t.Context(), src, dst, WithPullKeychain(&userKeychain{"bob"})); !registry.Refused(err) {
		t.Fatalf("Ensure() as bob = %v, want a refusal", err)
	}
	if _, err := svc.Ensure(t.Context(), src, dst, WithPullKeychain(&userKeychain{"alice"})); err != nil {
		t.Fatalf("Ensure() as alice = %v", err)
	}
	if _, err := svc.Ensure(t.Context(), src, dst, WithPullKeychain(&userKeychain{"bob"})); err != nil {
		t.Fatalf("Ensure() after the copy = %v, want the cached result", err)
	}
	if users := reg.users(); !equalStrings(users, []string{"bob", "alice"}) {
		t.Errorf("copies pulled as %q, want bob's then alice's, then none", users)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
