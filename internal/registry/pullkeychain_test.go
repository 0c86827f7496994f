package registry

import (
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
)

// staticKeychain answers every registry with one user's basic credentials
// and counts how often it was asked.
type staticKeychain struct {
	user, pass string
	resolves   atomic.Int32
}

func (k *staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	k.resolves.Add(1)
	return &authn.Basic{Username: k.user, Password: k.pass}, nil
}

func TestACopyPullsWithItsOwnKeychain(t *testing.T) {
	for _, basic := range []bool{false, true} {
		kind := "token registry"
		if basic {
			kind = "basic registry"
		}
		t.Run(kind, func(t *testing.T) {
			src, dst := newTestRegistry(t), newTestRegistry(t)
			want := seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64"))
			tokenAuth(src, "alice", "s3cret-Pa55", basic)
			c := newClient(t, insecureConfig(src, dst))
			srcRef := src.ref(t, "src/app:1.0")

			t.Run("without the keychain the copy is refused and says what to check", func(t *testing.T) {
				_, err := c.Copy(t.Context(), srcRef, dst.ref(t, "mirror/app:1.0"), CopyOptions{})
				wantErr := fmt.Sprintf(`copying %[1]s/src/app:1.0 to %[2]s/mirror/app:1.0: resolving source: 401 Unauthorized: authentication required (anonymous access was refused; configure registries[%[1]q].pull credentials)`, src.Host, dst.Host)
				if err == nil || err.Error() != wantErr {
					t.Fatalf("Copy() error =\n%v\nwant\n%s", err, wantErr)
				}
				if !Refused(err) || Retryable(err) {
					t.Errorf("Refused() = %v, Retryable() = %v, want true, false", Refused(err), Retryable(err))
				}
			})
			t.Run("with wrong credentials the error names the imagePullSecrets and no secret", func(t *testing.T) {
				kc := &staticKeychain{user: "alice", pass: "wrong-Pa55"}
				_, err := c.Copy(t.Context(), srcRef, dst.ref(t, "mirror/app:1.0"), CopyOptions{PullKeychain: kc})
				if err == nil || !strings.Contains(err.Error(), "check the Pod's imagePullSecrets") {
					t.Fatalf("Copy() error = %v, want a hint at the Pod's imagePullSecrets", err)
				}
				for _, secret := range []string{"wrong-Pa55", base64.StdEncoding.EncodeToString([]byte("alice:wrong-Pa55"))} {
					if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), secret) {
						t.Errorf("the error reveals %q: %v", secret, err)
					}
				}
			})
			t.Run("with the keychain the copy succeeds on the same client", func(t *testing.T) {
				kc := &staticKeychain{user: "alice", pass: "s3cret-Pa55"}
				res, err := c.Copy(t.Context(), srcRef, dst.ref(t, "mirror/app:1.0"), CopyOptions{PullKeychain: kc})
				if err != nil {
					t.Fatalf("Copy() = %v", err)
				}
				if res.Digest != want.String() || !res.Copied {
					t.Errorf("Copy() = %+v, want digest %s copied", res, want)
				}
				if kc.resolves.Load() == 0 {
					t.Error("the keychain was never asked")
				}
			})
			t.Run("a later copy without the keychain does not reuse its transport", func(t *testing.T) {
				_, err := c.Copy(t.Context(), srcRef, dst.ref(t, "mirror/other:1.0"), CopyOptions{})
				if !Refused(err) {
					t.Fatalf("Copy() = %v, want a 401", err)
				}
			})
		})
	}
}

func TestConfiguredCredentialsWinOverACopysKeychain(t *testing.T) {
	src, dst := newTestRegistry(t), newTestRegistry(t)
	seed(t, src.Host+"/src/app:1.0", platformIndex(t, "linux/amd64"))
	tokenAuth(src, "alice", "s3cret-Pa55", true)
	cfg := insecureConfig(src, dst)
	cfg.Registries[src.Host] = config.RegistryAccess{Insecure: true, Pull: &config.Credentials{UsernameEnv: "REG_USER", PasswordEnv: "REG_PASS"}}
	env := map[string]string{"REG_USER": "alice", "REG_PASS": "s3cret-Pa55"}
	c := newClient(t, cfg, withGetenv(func(k string) string { return env[k] }))

	kc := &staticKeychain{user: "mallory", pass: "nope"}
	if _, err := c.Copy(t.Context(), src.ref(t, "src/app:1.0"), dst.ref(t, "mirror/app:1.0"), CopyOptions{PullKeychain: kc}); err != nil {
		t.Fatalf("Copy() = %v", err)
	}
	if n := kc.resolves.Load(); n != 0 {
		t.Errorf("the keychain was asked %d times, want never: the config has credentials for the source", n)
	}
}
