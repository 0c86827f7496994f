package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// ecrTargetPrefix names ECR's JSON 1.1 operations in X-Amz-Target.
const ecrTargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// fakeAWS answers ECR (JSON 1.1), STS (query/XML), EC2 metadata and
// container credential requests with the recorded documents in
// testdata/ecr, and records what it was sent. The AWS SDK is pointed at
// it: BaseEndpoint for ECR and STS, AWS_EC2_METADATA_SERVICE_ENDPOINT and
// AWS_CONTAINER_CREDENTIALS_FULL_URI for the others.
type fakeAWS struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []awsCall
	answers map[string]awsAnswer // by op: "CreateRepository", "STS AssumeRole", "IMDS GET /latest/...", "CONTAINER GET /v1/credentials"
}

type awsCall struct {
	op     string
	header http.Header
	body   []byte
	url    string
}

type awsAnswer struct {
	status int
	file   string // under testdata/ecr, or
	body   string
}

// expiration matches the expiry of recorded credentials (STS XML and the
// JSON of IMDS and container endpoints). The fake moves it to an hour from
// now: the SDK rightly refuses to reuse credentials that have expired, and
// the recorded ones expired years ago.
var expiration = regexp.MustCompile(`(<Expiration>|"Expiration"\s*:\s*")[^<"]+`)

func newFakeAWS(t *testing.T) *fakeAWS {
	t.Helper()
	f := &fakeAWS{answers: map[string]awsAnswer{
		"CreateRepository":              {200, "create-repository.json", ""},
		"SetRepositoryPolicy":           {200, "set-repository-policy.json", ""},
		"PutLifecyclePolicy":            {200, "put-lifecycle-policy.json", ""},
		"GetAuthorizationToken":         {200, "get-authorization-token.json", ""},
		"STS AssumeRole":                {200, "sts-assume-role.xml", ""},
		"STS AssumeRoleWithWebIdentity": {200, "sts-assume-role-with-web-identity.xml", ""},
	}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		op := r.Header.Get("X-Amz-Target")
		switch {
		case op != "":
			op = strings.TrimPrefix(op, ecrTargetPrefix)
		case strings.HasPrefix(r.URL.Path, "/latest/"):
			op = "IMDS " + r.Method + " " + r.URL.Path
		case strings.HasPrefix(r.URL.Path, "/v1/credentials"):
			op = "CONTAINER " + r.Method + " " + r.URL.Path
		default:
			form, _ := url.ParseQuery(string(body))
			op = "STS " + form.Get("Action")
		}
		f.mu.Lock()
		f.calls = append(f.calls, awsCall{op: op, header: r.Header.Clone(), body: body, url: r.URL.String()})
		a, ok := f.answers[op]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if a.file != "" {
			data, err := os.ReadFile(filepath.Join("testdata", "ecr", a.file))
			if err != nil {
				t.Error(err)
			}
			a.body = string(data)
		}
		if op == "IMDS PUT /latest/api/token" {
			// IMDSv2 answers with the session's lifetime, as asked.
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		}
		a.body = expiration.ReplaceAllString(a.body, "${1}"+time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAWS) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.op)
	}
	return out
}

func (f *fakeAWS) call(t *testing.T, op string) awsCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.op == op {
			return c
		}
	}
	t.Fatalf("no %s call; calls: %v", op, f.ops())
	return awsCall{}
}

// awsEnv gives the test an AWS environment of its own: every AWS_
// variable of the machine unset, empty shared config and credentials
// files, no instance metadata service, then vars.
func awsEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// checkSigned verifies, as AWS does, the Signature Version 4 of what the
// server received: it signs the same method, URL, signed headers and body
// again with creds, at the request's X-Amz-Date, with the SDK's signer,
// and compares. So the request was signed with creds, for service in
// us-east-1, and arrived as it was signed.
func checkSigned(t *testing.T, c awsCall, host string, creds aws.Credentials, service string) {
	t.Helper()
	got := c.header.Get("Authorization")
	want := "AWS4-HMAC-SHA256 Credential=" + creds.AccessKeyID + "/"
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "/us-east-1/"+service+"/aws4_request, ") {
		t.Fatalf("%s Authorization = %q, want a signature by %s for %s in us-east-1", c.op, got, creds.AccessKeyID, service)
	}
	when, err := time.Parse("20060102T150405Z", c.header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("%s: X-Amz-Date %q: %v", c.op, c.header.Get("X-Amz-Date"), err)
	}
	_, signed, _ := strings.Cut(got, "SignedHeaders=")
	signed, _, _ = strings.Cut(signed, ",")
	req, _ := http.NewRequest(http.MethodPost, "http://"+host+c.url, bytes.NewReader(c.body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = c.header.Values(h)
		}
	}
	sum := sha256.Sum256(c.body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	if resigned := req.Header.Get("Authorization"); resigned != got {
		t.Errorf("%s Authorization =\n%s\nwant\n%s", c.op, got, resigned)
	}
	if tok := c.header.Get("X-Amz-Security-Token"); tok != creds.SessionToken {
		t.Errorf("%s X-Amz-Security-Token = %q, want %q", c.op, tok, creds.SessionToken)
	}
}

func jsonEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s body =\n%s\nwant\n%s", what, got, want)
	}
}

var ecrConfig = config.ECR{
	Region:             "us-east-1",
	AccountID:          "123456789012",
	AssumeRoleARN:      "arn:aws:iam::123456789012:role/ecr-pusher",
	Tags:               []config.Tag{{Key: "owner", Value: "platform"}, {Key: "managed-by", Value: "image-swapper"}},
	ImageTagMutability: "IMMUTABLE",
	ScanOnPush:         true,
	EncryptionType:     "KMS",
	KMSKey:             "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
	AccessPolicy:       `{"Version":"2012-10-17","Statement":[]}`,
	LifecyclePolicy:    `{"rules":[]}`,
}

// ecrFor builds the ECR provider with the SDK's clients pointed at the
// fake, in an environment of vars only.
func ecrFor(t *testing.T, aws *fakeAWS, cfg config.ECR, vars map[string]string) *ECR {
	t.Helper()
	awsEnv(t, vars)
	e := NewECR(cfg)
	e.endpoint = aws.URL
	return e
}

var (
	baseKeys = map[string]string{"AWS_ACCESS_KEY_ID": "AKIDBASE", "AWS_SECRET_ACCESS_KEY": "base-secret"}
	base     = aws.Credentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base-secret"}
)

// assumed are the credentials in testdata/ecr/sts-assume-role.xml.
var assumed = aws.Credentials{
	AccessKeyID:     "ASIAIOSFODNN7EXAMPLE",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
	SessionToken:    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
}

func host(f *fakeAWS) string { return strings.TrimPrefix(f.URL, "http://") }

func TestECRCreatesARepositoryAsConfigured(t *testing.T) {
	aws := newFakeAWS(t)
	e := ecrFor(t, aws, ecrConfig, baseKeys)
	if err := e.EnsureRepository(t.Context(), "mirror/docker.io/library/nginx"); err != nil {
		t.Fatal(err)
	}
	want := []string{"STS AssumeRole", "CreateRepository", "SetRepositoryPolicy", "PutLifecyclePolicy"}
	if got := aws.ops(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}

	sts := aws.call(t, "STS AssumeRole")
	form, _ := url.ParseQuery(string(sts.body))
	wantForm := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {ecrConfig.AssumeRoleARN}, "RoleSessionName": {"image-swapper"}, "DurationSeconds": {"3600"}}
	if !reflect.DeepEqual(form, wantForm) {
		t.Errorf("AssumeRole form = %v, want %v", form, wantForm)
	}
	checkSigned(t, sts, host(aws), base, "sts")

	create := aws.call(t, "CreateRepository")
	jsonEqual(t, "CreateRepository", create.body, `{
		"registryId": "123456789012",
		"repositoryName": "mirror/docker.io/library/nginx",
		"tags": [{"Key": "owner", "Value": "platform"}, {"Key": "managed-by", "Value": "image-swapper"}],
		"imageTagMutability": "IMMUTABLE",
		"imageScanningConfiguration": {"scanOnPush": true},
		"encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
	}`)
	if ct := create.header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Errorf("Content-Type = %q", ct)
	}
	checkSigned(t, create, host(aws), assumed, "ecr")

	jsonEqual(t, "SetRepositoryPolicy", aws.call(t, "SetRepositoryPolicy").body,
		`{"registryId":"123456789012","repositoryName":"mirror/docker.io/library/nginx","policyText":"{\"Version\":\"2012-10-17\",\"Statement\":[]}"}`)
	jsonEqual(t, "PutLifecyclePolicy", aws.call(t, "PutLifecyclePolicy").body,
		`{"registryId":"123456789012","repositoryName":"mirror/docker.io/library/nginx","lifecyclePolicyText":"{\"rules\":[]}"}`)

	// The assumed role is reused while it is valid.
	if err := e.EnsureRepository(t.Context(), "mirror/quay.io/x"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(aws.ops(), ","), "STS"); n != 1 {
		t.Errorf("AssumeRole calls = %d, want 1", n)
	}
}

func TestECRAppliesPoliciesToARepositoryThatExists(t *testing.T) {
	aws := newFakeAWS(t)
	aws.answers["CreateRepository"] = awsAnswer{400, "repository-already-exists.json", ""}
	cfg := ecrConfig
	cfg.AssumeRoleARN = ""
	if err := ecrFor(t, aws, cfg, baseKeys).EnsureRepository(t.Context(), "project-a/sample-repo"); err != nil {
		t.Fatalf("EnsureRepository() = %v", err)
	}
	want := []string{"CreateRepository", "SetRepositoryPolicy", "PutLifecyclePolicy"}
	if got := aws.ops(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	checkSigned(t, aws.call(t, "CreateRepository"), host(aws), base, "ecr")
}

func TestECRMinimalConfigSendsOnlyTheName(t *testing.T) {
	aws := newFakeAWS(t)
	if err := ecrFor(t, aws, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, baseKeys).EnsureRepository(t.Context(), "app"); err != nil {
		t.Fatal(err)
	}
	if got := aws.ops(); !reflect.DeepEqual(got, []string{"CreateRepository"}) {
		t.Errorf("calls = %v, want only CreateRepository", got)
	}
	jsonEqual(t, "CreateRepository", aws.call(t, "CreateRepository").body, `{"registryId":"123456789012","repositoryName":"app"}`)
}

func TestECRReportsRefusals(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		answer    awsAnswer
		want      string
		retryable bool
	}{
		{"a refused role", "STS AssumeRole", awsAnswer{403, "sts-access-denied.xml", ""},
			"ECR CreateRepository: getting AWS credentials: STS AssumeRole: 403 Forbidden: AccessDenied: User: arn:aws:iam::123456789012:user/mirror is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/ecr-pusher", false},
		{"an invalid parameter", "CreateRepository", awsAnswer{400, "", `{"__type":"InvalidParameterException","message":"Invalid parameter at 'repositoryName' failed to satisfy constraint"}`},
			"ECR CreateRepository: 400 Bad Request: InvalidParameterException: Invalid parameter at 'repositoryName' failed to satisfy constraint", false},
		{"a missing permission", "SetRepositoryPolicy", awsAnswer{400, "", `{"__type":"com.amazonaws.ecr#AccessDeniedException","Message":"not authorized to perform: ecr:SetRepositoryPolicy"}`},
			"ECR SetRepositoryPolicy: 400 Bad Request: AccessDeniedException: not authorized to perform: ecr:SetRepositoryPolicy", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws := newFakeAWS(t)
			aws.answers[tt.op] = tt.answer
			err := ecrFor(t, aws, ecrConfig, baseKeys).EnsureRepository(t.Context(), "app")
			if err == nil || err.Error() != tt.want {
				t.Errorf("EnsureRepository() =\n%v\nwant\n%s", err, tt.want)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable() = %v, want %v", Retryable(err), tt.retryable)
			}
			if strings.Contains(fmt.Sprint(err), "base-secret") {
				t.Error("the error reveals the secret key")
			}
		})
	}
}

func TestECRAuthorizationTokenIsDecodedAndReused(t *testing.T) {
	aws := newFakeAWS(t)
	cfg := ecrConfig
	cfg.AssumeRoleARN = ""
	e := ecrFor(t, aws, cfg, baseKeys)
	e.now = func() time.Time { return time.Unix(1470951892-3600, 0) } // an hour before expiresAt
	for range 2 {
		auth, err := e.Authorization(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if auth.Username != "AWS" || auth.Password != "eyJwYXlsb2FkIjoiZXhhbXBsZSJ9" {
			t.Errorf("Authorization() = %+v", auth)
		}
	}
	if got := aws.ops(); !reflect.DeepEqual(got, []string{"GetAuthorizationToken"}) {
		t.Errorf("calls = %v, want one GetAuthorizationToken", got)
	}
	jsonEqual(t, "GetAuthorizationToken", aws.call(t, "GetAuthorizationToken").body, `{}`)
}

// writeFile writes a file for the test and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The SDK's default chain finds credentials where every AWS tool does.
// Each case sets the environment a cluster or a laptop would have, asks
// for a push token, and checks who signed the GetAuthorizationToken call.
func TestAWSCredentialsComeFromEverySourceTheSDKKnows(t *testing.T) {
	webIdentity := aws.Credentials{AccessKeyID: "ASgeIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", SessionToken: "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE"}
	instance := aws.Credentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", SessionToken: "token"}
	podIdentity := aws.Credentials{AccessKeyID: "ASIAPODIDENTITYEXAMPLE", SecretAccessKey: "pod-identity-secret-EXAMPLEKEY", SessionToken: "IQoJb3JpZ2luX2VjEPodIdentityEXAMPLE"}
	imdsCreds, err := os.ReadFile("testdata/ecr/imds-credentials.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// setup returns the environment, given the fake's URL.
		setup   func(t *testing.T, fake string) map[string]string
		answers map[string]awsAnswer
		signer  aws.Credentials // of GetAuthorizationToken
		wantOps []string        // in order; others may come between
		check   func(t *testing.T, aws *fakeAWS)
	}{
		{
			name: "environment keys",
			setup: func(*testing.T, string) map[string]string {
				return map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token"}
			},
			signer:  aws.Credentials{AccessKeyID: "AKIDENV", SecretAccessKey: "env-secret", SessionToken: "env-token"},
			wantOps: []string{"GetAuthorizationToken"},
		},
		{
			name: "a shared-config profile with role_arn and a source_profile of static keys",
			setup: func(t *testing.T, _ string) map[string]string {
				return map[string]string{
					"AWS_PROFILE": "mirror",
					"AWS_CONFIG_FILE": writeFile(t, "config", "[profile mirror]\n"+
						"role_arn = arn:aws:iam::210987654321:role/cross-account-pusher\n"+
						"source_profile = base\n"+
						"role_session_name = laptop-session\n\n"+
						"[profile base]\nregion = eu-west-1\n"),
					"AWS_SHARED_CREDENTIALS_FILE": writeFile(t, "credentials", "[base]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n"),
				}
			},
			signer:  assumed,
			wantOps: []string{"STS AssumeRole", "GetAuthorizationToken"},
			check: func(t *testing.T, fake *fakeAWS) {
				c := fake.call(t, "STS AssumeRole")
				form, _ := url.ParseQuery(string(c.body))
				if form.Get("RoleArn") != "arn:aws:iam::210987654321:role/cross-account-pusher" || form.Get("RoleSessionName") != "laptop-session" {
					t.Errorf("AssumeRole form = %v, want the profile's role_arn and role_session_name", form)
				}
				checkSigned(t, c, host(fake), aws.Credentials{AccessKeyID: "AKIDPROFILE", SecretAccessKey: "profile-secret"}, "sts")
			},
		},
		{
			name: "IRSA web identity",
			setup: func(t *testing.T, _ string) map[string]string {
				return map[string]string{
					"AWS_WEB_IDENTITY_TOKEN_FILE": writeFile(t, "token", "eyJhbGciOiJSUzI1NiJ9.projected.sa-token"),
					"AWS_ROLE_ARN":                "arn:aws:iam::123456789012:role/irsa",
					"AWS_ROLE_SESSION_NAME":       "irsa-session",
				}
			},
			signer:  webIdentity,
			wantOps: []string{"STS AssumeRoleWithWebIdentity", "GetAuthorizationToken"},
			check: func(t *testing.T, fake *fakeAWS) {
				c := fake.call(t, "STS AssumeRoleWithWebIdentity")
				form, _ := url.ParseQuery(string(c.body))
				if form.Get("WebIdentityToken") != "eyJhbGciOiJSUzI1NiJ9.projected.sa-token" || form.Get("RoleArn") != "arn:aws:iam::123456789012:role/irsa" || form.Get("RoleSessionName") != "irsa-session" {
					t.Errorf("AssumeRoleWithWebIdentity form = %v", form)
				}
				if c.header.Get("Authorization") != "" {
					t.Error("AssumeRoleWithWebIdentity was signed; it must not be")
				}
			},
		},
		{
			name: "EKS Pod Identity",
			setup: func(t *testing.T, fake string) map[string]string {
				return map[string]string{
					// The agent's address is 169.254.170.23; the SDK allows
					// plain HTTP only to it, ECS's and loopback.
					"AWS_CONTAINER_CREDENTIALS_FULL_URI":     fake + "/v1/credentials",
					"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": writeFile(t, "eks-pod-identity-token", "eyJhbGciOiJSUzI1NiJ9.pod-identity.sa-token"),
				}
			},
			answers: map[string]awsAnswer{"CONTAINER GET /v1/credentials": {200, "eks-pod-identity-credentials.json", ""}},
			signer:  podIdentity,
			wantOps: []string{"CONTAINER GET /v1/credentials", "GetAuthorizationToken"},
			check: func(t *testing.T, fake *fakeAWS) {
				if got := fake.call(t, "CONTAINER GET /v1/credentials").header.Get("Authorization"); got != "eyJhbGciOiJSUzI1NiJ9.pod-identity.sa-token" {
					t.Errorf("Authorization = %q, want the token file's content", got)
				}
			},
		},
		{
			name: "the EC2 instance role with IMDSv2",
			setup: func(t *testing.T, fake string) map[string]string {
				return map[string]string{"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake}
			},
			answers: map[string]awsAnswer{
				"IMDS PUT /latest/api/token":                                    {200, "", "imds-session"},
				"IMDS GET /latest/meta-data/iam/security-credentials/":          {200, "", "node-role\n"},
				"IMDS GET /latest/meta-data/iam/security-credentials/node-role": {200, "", string(imdsCreds)},
			},
			signer:  instance,
			wantOps: []string{"IMDS PUT /latest/api/token", "IMDS GET /latest/meta-data/iam/security-credentials/node-role", "GetAuthorizationToken"},
			check: func(t *testing.T, fake *fakeAWS) {
				if got := fake.call(t, "IMDS GET /latest/meta-data/iam/security-credentials/node-role").header.Get("X-aws-ec2-metadata-token"); got != "imds-session" {
					t.Errorf("X-aws-ec2-metadata-token = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakeAWS(t)
			for k, v := range tt.answers {
				fake.answers[k] = v
			}
			e := ecrFor(t, fake, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, tt.setup(t, fake.URL))
			e.now = func() time.Time { return time.Unix(1470951892-3600, 0) }
			if _, err := e.Authorization(t.Context()); err != nil {
				t.Fatal(err)
			}
			if ops := fake.ops(); !isSubsequence(tt.wantOps, ops) {
				t.Errorf("calls = %v, want %v in this order", ops, tt.wantOps)
			}
			checkSigned(t, fake.call(t, "GetAuthorizationToken"), host(fake), tt.signer, "ecr")
			if tt.check != nil {
				tt.check(t, fake)
			}
		})
	}
	t.Run("no source at all is explained", func(t *testing.T) {
		e := ecrFor(t, newFakeAWS(t), config.ECR{Region: "us-east-1"}, nil)
		_, err := e.Authorization(t.Context())
		if err == nil || !strings.HasPrefix(err.Error(), "ECR GetAuthorizationToken: getting AWS credentials: ") || !strings.Contains(err.Error(), "AWS_EC2_METADATA_DISABLED") {
			t.Errorf("Authorization() = %v, want the SDK's account of the empty chain", err)
		}
	})
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(want, got []string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

func TestCopyToECRCreatesTheRepositoryAndPushesWithItsToken(t *testing.T) {
	aws := newFakeAWS(t)
	src, ecrRegistry := newTestRegistry(t), newTestRegistry(t)
	seed(t, src.Host+"/src/app:1", platformIndex(t, "linux/amd64"))
	tokenAuth(ecrRegistry, "AWS", "eyJwYXlsb2FkIjoiZXhhbXBsZSJ9", true) // ECR speaks basic auth

	const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	cfg := insecureConfig(src)
	cfg.TargetRegistry = ecrHost + "/mirror"
	cfg.Registries[ecrHost] = config.RegistryAccess{Endpoint: ecrRegistry.URL, Insecure: true}
	e := ecrFor(t, aws, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, baseKeys)
	e.now = func() time.Time { return time.Unix(1470951892-3600, 0) } // while the recorded token is valid
	c := newClient(t, cfg, WithProvider(e))

	dst, _ := reference.Parse(ecrHost + "/mirror/docker.io/library/app:1")
	res, err := c.Copy(t.Context(), src.ref(t, "src/app:1"), dst, CopyOptions{})
	if err != nil || !res.Copied {
		t.Fatalf("Copy() = %+v, %v", res, err)
	}
	if got := aws.ops(); !reflect.DeepEqual(got, []string{"GetAuthorizationToken", "CreateRepository"}) {
		t.Errorf("ECR calls = %v, want a token and the repository", got)
	}
	jsonEqual(t, "CreateRepository", aws.call(t, "CreateRepository").body, `{"registryId":"123456789012","repositoryName":"mirror/docker.io/library/app"}`)
}

func TestTheConfigChoosesTheProvider(t *testing.T) {
	tests := []struct {
		name string
		tp   *config.TargetProvider
		want any
	}{
		{"ecr", &config.TargetProvider{ECR: &config.ECR{Region: "eu-west-1", AccountID: "123456789012"}}, &ECR{}},
		{"artifactRegistry", &config.TargetProvider{ArtifactRegistry: &config.ArtifactRegistry{Project: "p", Location: "europe-west4", Repository: "r"}}, &ArtifactRegistry{}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{TargetRegistry: "registry.example.com", TargetProvider: tt.tp}
			c := newClient(t, cfg)
			if reflect.TypeOf(c.provider) != reflect.TypeOf(tt.want) {
				t.Errorf("provider = %T, want %T", c.provider, tt.want)
			}
			if tt.want != nil && c.providerHost != "registry.example.com" {
				t.Errorf("provider serves %q, want registry.example.com", c.providerHost)
			}
			// A reloaded config builds its provider again, the same way.
			p, err := NewProvider(cfg)
			if err != nil || reflect.TypeOf(p) != reflect.TypeOf(tt.want) {
				t.Errorf("NewProvider() = %T, %v; want %T", p, err, tt.want)
			}
		})
	}
	_, err := NewProvider(&config.Config{TargetProvider: &config.TargetProvider{ECR: &config.ECR{}, ArtifactRegistry: &config.ArtifactRegistry{}}})
	if err == nil || err.Error() != "targetProvider: set ecr or artifactRegistry, not both" {
		t.Errorf("NewProvider(both) = %v", err)
	}
}
