package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/image-swapper/image-swapper/internal/config"
	"github.com/image-swapper/image-swapper/internal/reference"
)

// fakeAWS answers ECR (JSON 1.1), STS (query/XML) and EC2 metadata
// requests with the recorded documents in testdata/ecr, and records what
// it was sent.
type fakeAWS struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []awsCall
	answers map[string]awsAnswer // by op: "CreateRepository", "STS AssumeRole", "IMDS GET /latest/..."
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
		case strings.HasPrefix(r.URL.Path, "/latest/") || strings.HasPrefix(r.URL.Path, "/v2/credentials"):
			op = "IMDS " + r.Method + " " + r.URL.Path
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

// env is a fake environment.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// checkSigned re-signs what the server received with creds and compares:
// the request arrived as it was signed, for the right service and region.
func checkSigned(t *testing.T, c awsCall, host string, creds awsCredentials, service string) {
	t.Helper()
	when, err := time.Parse("20060102T150405Z", c.header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("%s: X-Amz-Date %q: %v", c.op, c.header.Get("X-Amz-Date"), err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+host+c.url, bytes.NewReader(c.body))
	for _, h := range []string{"Content-Type", "X-Amz-Target"} {
		if v := c.header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	signV4(req, c.body, creds, "us-east-1", service, when)
	if got, want := c.header.Get("Authorization"), req.Header.Get("Authorization"); got != want {
		t.Errorf("%s Authorization =\n%s\nwant\n%s", c.op, got, want)
	}
	if got := c.header.Get("X-Amz-Security-Token"); got != creds.SessionToken {
		t.Errorf("%s X-Amz-Security-Token = %q, want %q", c.op, got, creds.SessionToken)
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

// ecrFor builds the ECR provider against the fake, at the time the
// recorded STS credentials are still valid.
func ecrFor(aws *fakeAWS, cfg config.ECR, vars map[string]string) *ECR {
	all := map[string]string{"AWS_ENDPOINT_URL": aws.URL, "AWS_EC2_METADATA_SERVICE_ENDPOINT": aws.URL}
	for k, v := range vars {
		all[k] = v
	}
	e := NewECR(cfg, env(all))
	when := func() time.Time { return time.Date(2019, 11, 9, 12, 0, 0, 0, time.UTC) }
	e.now, e.chain.now = when, when
	return e
}

var baseKeys = map[string]string{"AWS_ACCESS_KEY_ID": "AKIDBASE", "AWS_SECRET_ACCESS_KEY": "base-secret"}

// assumed are the credentials in testdata/ecr/sts-assume-role.xml.
var assumed = awsCredentials{
	AccessKeyID:     "ASIAIOSFODNN7EXAMPLE",
	SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
	SessionToken:    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
}

func TestECRCreatesARepositoryAsConfigured(t *testing.T) {
	aws := newFakeAWS(t)
	e := ecrFor(aws, ecrConfig, baseKeys)
	if err := e.EnsureRepository(t.Context(), "mirror/docker.io/library/nginx"); err != nil {
		t.Fatal(err)
	}
	want := []string{"STS AssumeRole", "CreateRepository", "SetRepositoryPolicy", "PutLifecyclePolicy"}
	if got := aws.ops(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	host := strings.TrimPrefix(aws.URL, "http://")

	sts := aws.call(t, "STS AssumeRole")
	form, _ := url.ParseQuery(string(sts.body))
	wantForm := url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {ecrConfig.AssumeRoleARN}, "RoleSessionName": {"image-swapper"}, "DurationSeconds": {"3600"}}
	if !reflect.DeepEqual(form, wantForm) {
		t.Errorf("AssumeRole form = %v, want %v", form, wantForm)
	}
	checkSigned(t, sts, host, awsCredentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base-secret"}, "sts")

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
	if !strings.HasPrefix(create.header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=ASIAIOSFODNN7EXAMPLE/20191109/us-east-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, ") {
		t.Errorf("CreateRepository Authorization = %s", create.header.Get("Authorization"))
	}
	checkSigned(t, create, host, assumed, "ecr")

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
	if err := ecrFor(aws, cfg, baseKeys).EnsureRepository(t.Context(), "project-a/sample-repo"); err != nil {
		t.Fatalf("EnsureRepository() = %v", err)
	}
	want := []string{"CreateRepository", "SetRepositoryPolicy", "PutLifecyclePolicy"}
	if got := aws.ops(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	checkSigned(t, aws.call(t, "CreateRepository"), strings.TrimPrefix(aws.URL, "http://"), awsCredentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base-secret"}, "ecr")
}

func TestECRMinimalConfigSendsOnlyTheName(t *testing.T) {
	aws := newFakeAWS(t)
	if err := ecrFor(aws, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, baseKeys).EnsureRepository(t.Context(), "app"); err != nil {
		t.Fatal(err)
	}
	if got := aws.ops(); !reflect.DeepEqual(got, []string{"CreateRepository"}) {
		t.Errorf("calls = %v, want only CreateRepository", got)
	}
	jsonEqual(t, "CreateRepository", aws.call(t, "CreateRepository").body, `{"registryId":"123456789012","repositoryName":"app"}`)
}

func TestECRReportsRefusals(t *testing.T) {
	tests := []struct {
		name   string
		op     string
		answer awsAnswer
		want   string
	}{
		{"a refused role", "STS AssumeRole", awsAnswer{403, "sts-access-denied.xml", ""},
			"ECR CreateRepository: assuming role arn:aws:iam::123456789012:role/ecr-pusher: STS AssumeRole: 403 Forbidden: AccessDenied: User: arn:aws:iam::123456789012:user/mirror is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/ecr-pusher"},
		{"an invalid parameter", "CreateRepository", awsAnswer{400, "", `{"__type":"InvalidParameterException","message":"Invalid parameter at 'repositoryName' failed to satisfy constraint"}`},
			"ECR CreateRepository: 400 Bad Request: InvalidParameterException: Invalid parameter at 'repositoryName' failed to satisfy constraint"},
		{"a missing permission", "SetRepositoryPolicy", awsAnswer{400, "", `{"__type":"com.amazonaws.ecr#AccessDeniedException","Message":"not authorized to perform: ecr:SetRepositoryPolicy"}`},
			"ECR SetRepositoryPolicy: 400 Bad Request: AccessDeniedException: not authorized to perform: ecr:SetRepositoryPolicy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws := newFakeAWS(t)
			aws.answers[tt.op] = tt.answer
			err := ecrFor(aws, ecrConfig, baseKeys).EnsureRepository(t.Context(), "app")
			if err == nil || err.Error() != tt.want {
				t.Errorf("EnsureRepository() =\n%v\nwant\n%s", err, tt.want)
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
	e := ecrFor(aws, cfg, baseKeys)
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

func TestAWSCredentialsComeFromTheClusterSources(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.projected.sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	imdsCreds, _ := os.ReadFile("testdata/ecr/imds-credentials.json")
	tests := []struct {
		name    string
		vars    map[string]string
		answers map[string]awsAnswer
		want    awsCredentials
		wantOps []string
		check   func(t *testing.T, aws *fakeAWS)
	}{
		{"environment keys", map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "tok"}, nil,
			awsCredentials{AccessKeyID: "AKID", SecretAccessKey: "s", SessionToken: "tok"}, nil, nil},
		{"IRSA web identity", map[string]string{"AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/irsa"}, nil,
			awsCredentials{AccessKeyID: "ASgeIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY", SessionToken: "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE", Expires: time.Date(2014, 10, 24, 23, 0, 23, 0, time.UTC)},
			[]string{"STS AssumeRoleWithWebIdentity"},
			func(t *testing.T, aws *fakeAWS) {
				c := aws.call(t, "STS AssumeRoleWithWebIdentity")
				form, _ := url.ParseQuery(string(c.body))
				if form.Get("WebIdentityToken") != "eyJhbGciOiJSUzI1NiJ9.projected.sa-token" || form.Get("RoleArn") != "arn:aws:iam::123456789012:role/irsa" {
					t.Errorf("AssumeRoleWithWebIdentity form = %v", form)
				}
				if c.header.Get("Authorization") != "" {
					t.Error("AssumeRoleWithWebIdentity was signed; it must not be")
				}
			}},
		{"EKS Pod Identity", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "pod-identity-token"},
			map[string]awsAnswer{"IMDS GET /v2/credentials": {200, "", string(imdsCreds)}},
			awsCredentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", SessionToken: "token", Expires: time.Date(2017, 5, 17, 15, 9, 54, 0, time.UTC)},
			[]string{"IMDS GET /v2/credentials"},
			func(t *testing.T, aws *fakeAWS) {
				if got := aws.call(t, "IMDS GET /v2/credentials").header.Get("Authorization"); got != "pod-identity-token" {
					t.Errorf("Authorization = %q, want the Pod Identity token", got)
				}
			}},
		{"the EC2 instance role with IMDSv2", nil,
			map[string]awsAnswer{
				"IMDS PUT /latest/api/token":                                    {200, "", "imds-session"},
				"IMDS GET /latest/meta-data/iam/security-credentials/":          {200, "", "node-role\n"},
				"IMDS GET /latest/meta-data/iam/security-credentials/node-role": {200, "", string(imdsCreds)},
			},
			awsCredentials{AccessKeyID: "ASIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", SessionToken: "token", Expires: time.Date(2017, 5, 17, 15, 9, 54, 0, time.UTC)},
			[]string{"IMDS PUT /latest/api/token", "IMDS GET /latest/meta-data/iam/security-credentials/", "IMDS GET /latest/meta-data/iam/security-credentials/node-role"},
			func(t *testing.T, aws *fakeAWS) {
				if got := aws.call(t, "IMDS GET /latest/meta-data/iam/security-credentials/node-role").header.Get("X-aws-ec2-metadata-token"); got != "imds-session" {
					t.Errorf("X-aws-ec2-metadata-token = %q", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aws := newFakeAWS(t)
			for k, v := range tt.answers {
				aws.answers[k] = v
			}
			vars := map[string]string{}
			for k, v := range tt.vars {
				vars[k] = v
			}
			if _, ok := vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"]; ok {
				vars["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = aws.URL + "/v2/credentials"
			}
			e := ecrFor(aws, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, vars)
			got, err := e.chain.retrieve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("retrieve() = %+v, want %+v", got, tt.want)
			}
			if ops := aws.ops(); !reflect.DeepEqual(ops, tt.wantOps) {
				t.Errorf("calls = %v, want %v", ops, tt.wantOps)
			}
			if tt.check != nil {
				tt.check(t, aws)
			}
		})
	}
	t.Run("no source at all is explained", func(t *testing.T) {
		e := NewECR(config.ECR{Region: "us-east-1"}, env(map[string]string{"AWS_EC2_METADATA_DISABLED": "true"}))
		_, err := e.chain.retrieve(t.Context())
		want := "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use IRSA (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or EKS Pod Identity"
		if err == nil || err.Error() != want {
			t.Errorf("retrieve() = %v, want %s", err, want)
		}
	})
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
	e := ecrFor(aws, config.ECR{Region: "us-east-1", AccountID: "123456789012"}, baseKeys)
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
		tp   config.TargetProvider
		want any
	}{
		{"ecr", config.TargetProvider{ECR: &config.ECR{Region: "eu-west-1", AccountID: "123456789012"}}, &ECR{}},
		{"artifactRegistry", config.TargetProvider{ArtifactRegistry: &config.ArtifactRegistry{Project: "p", Location: "europe-west4", Repository: "r"}}, &ArtifactRegistry{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, &config.Config{TargetRegistry: "registry.example.com", TargetProvider: &tt.tp})
			if reflect.TypeOf(c.provider) != reflect.TypeOf(tt.want) || c.providerHost != "registry.example.com" {
				t.Errorf("provider = %T for %q, want %T", c.provider, c.providerHost, tt.want)
			}
		})
	}
	if e := NewECR(config.ECR{Region: "eu-west-1"}, env(nil)); e.endpoint != "https://api.ecr.eu-west-1.amazonaws.com" || e.chain.stsEndpoint != "https://sts.eu-west-1.amazonaws.com" {
		t.Errorf("ECR endpoints = %s, %s", e.endpoint, e.chain.stsEndpoint)
	}
}
