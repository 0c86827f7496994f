package registry

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Where AWS serves credentials inside EC2 and ECS/EKS Pod Identity.
const (
	defaultIMDSEndpoint      = "http://169.254.169.254"
	defaultContainerEndpoint = "http://169.254.170.2"
	stsVersion               = "2011-06-15"
	roleSessionName          = "image-swapper"
)

// credentialMargin: credentials and tokens are renewed this long before
// they expire.
const credentialMargin = 5 * time.Minute

// awsChain finds AWS credentials like the AWS SDKs' default chain, for the
// sources a cluster uses: environment keys, IRSA web identity, ECS/EKS Pod
// Identity container credentials, and the EC2 instance role (IMDSv2).
// Shared config files and SSO are not read.
type awsChain struct {
	getenv      func(string) string
	client      *http.Client
	region      string
	stsEndpoint string
	imds        string
	container   string
	readFile    func(string) ([]byte, error)
	now         func() time.Time
}

func newAWSChain(region string, getenv func(string) string, client *http.Client, now func() time.Time) *awsChain {
	return &awsChain{
		getenv:      getenv,
		client:      client,
		region:      region,
		stsEndpoint: awsEndpoint(getenv, "STS", "https://sts."+region+".amazonaws.com"),
		imds:        firstNonEmpty(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"), defaultIMDSEndpoint),
		container:   defaultContainerEndpoint,
		readFile:    os.ReadFile,
		now:         now,
	}
}

// awsEndpoint honours AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL, as
// the AWS SDKs do (VPC endpoints, tests).
func awsEndpoint(getenv func(string) string, service, def string) string {
	return strings.TrimSuffix(firstNonEmpty(getenv("AWS_ENDPOINT_URL_"+service), getenv("AWS_ENDPOINT_URL"), def), "/")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// retrieve returns the first credentials the chain finds.
func (a *awsChain) retrieve(ctx context.Context) (awsCredentials, error) {
	if id, secret := a.getenv("AWS_ACCESS_KEY_ID"), a.getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		return awsCredentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: a.getenv("AWS_SESSION_TOKEN")}, nil
	}
	if file, role := a.getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), a.getenv("AWS_ROLE_ARN"); file != "" && role != "" {
		return a.webIdentity(ctx, file, role)
	}
	if full, rel := a.getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), a.getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); full != "" || rel != "" {
		u := full
		if u == "" {
			u = a.container + rel
		}
		return a.containerCredentials(ctx, u)
	}
	if !strings.EqualFold(a.getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		creds, err := a.instanceRole(ctx)
		if err == nil {
			return creds, nil
		}
		return awsCredentials{}, fmt.Errorf("no AWS credentials: none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN (IRSA) or AWS_CONTAINER_CREDENTIALS_* (Pod Identity), and the EC2 instance metadata service failed: %w", err)
	}
	return awsCredentials{}, errors.New("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use IRSA (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or EKS Pod Identity")
}

// stsResult is the result element of AssumeRole and
// AssumeRoleWithWebIdentity.
type stsResult struct {
	Credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	} `xml:"Credentials"`
}

func (s stsResult) credentials() (awsCredentials, error) {
	c := s.Credentials
	creds := awsCredentials{
		AccessKeyID:     strings.TrimSpace(c.AccessKeyID),
		SecretAccessKey: strings.TrimSpace(c.SecretAccessKey),
		SessionToken:    strings.Join(strings.Fields(c.SessionToken), ""),
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return awsCredentials{}, errors.New("STS answered without credentials")
	}
	if exp := strings.TrimSpace(c.Expiration); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return awsCredentials{}, fmt.Errorf("STS answered an invalid expiration %q", exp)
		}
		creds.Expires = t
	}
	return creds, nil
}

// stsError is the XML of an STS refusal.
type stsError struct {
	Error struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
}

// sts calls an STS action; base signs it unless nil (web identity calls
// are not signed).
func (a *awsChain) sts(ctx context.Context, action string, params url.Values, base *awsCredentials) (awsCredentials, error) {
	params.Set("Action", action)
	params.Set("Version", stsVersion)
	body := []byte(params.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.stsEndpoint+"/", strings.NewReader(string(body)))
	if err != nil {
		return awsCredentials{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if base != nil {
		signV4(req, body, *base, a.region, "sts", a.now())
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return awsCredentials{}, fmt.Errorf("STS %s: %w", action, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return awsCredentials{}, fmt.Errorf("STS %s: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e stsError
		_ = xml.Unmarshal(data, &e)
		return awsCredentials{}, &cloudError{Op: "STS " + action, StatusCode: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	var doc struct {
		AssumeRole  stsResult `xml:"AssumeRoleResult"`
		WebIdentity stsResult `xml:"AssumeRoleWithWebIdentityResult"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return awsCredentials{}, fmt.Errorf("STS %s: unexpected response: %w", action, err)
	}
	result := doc.AssumeRole
	if action == "AssumeRoleWithWebIdentity" {
		result = doc.WebIdentity
	}
	creds, err := result.credentials()
	if err != nil {
		return awsCredentials{}, fmt.Errorf("STS %s: %w", action, err)
	}
	return creds, nil
}

// assumeRole exchanges base credentials for the role's.
func (a *awsChain) assumeRole(ctx context.Context, base awsCredentials, roleARN string) (awsCredentials, error) {
	return a.sts(ctx, "AssumeRole", url.Values{
		"RoleArn":         {roleARN},
		"RoleSessionName": {roleSessionName},
		"DurationSeconds": {"3600"},
	}, &base)
}

// webIdentity exchanges a projected service account token (IRSA).
func (a *awsChain) webIdentity(ctx context.Context, file, roleARN string) (awsCredentials, error) {
	token, err := a.readFile(file)
	if err != nil {
		return awsCredentials{}, fmt.Errorf("reading AWS_WEB_IDENTITY_TOKEN_FILE: %w", unwrapPathError(err))
	}
	session := firstNonEmpty(a.getenv("AWS_ROLE_SESSION_NAME"), roleSessionName)
	return a.sts(ctx, "AssumeRoleWithWebIdentity", url.Values{
		"RoleArn":          {roleARN},
		"RoleSessionName":  {session},
		"WebIdentityToken": {strings.TrimSpace(string(token))},
	}, nil)
}

// endpointCredentials is the JSON of container and instance credentials.
type endpointCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

func (e endpointCredentials) credentials(source string) (awsCredentials, error) {
	if e.AccessKeyID == "" || e.SecretAccessKey == "" {
		return awsCredentials{}, fmt.Errorf("%s answered without credentials", source)
	}
	c := awsCredentials{AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey, SessionToken: e.Token}
	if e.Expiration != "" {
		t, err := time.Parse(time.RFC3339, e.Expiration)
		if err != nil {
			return awsCredentials{}, fmt.Errorf("%s answered an invalid expiration %q", source, e.Expiration)
		}
		c.Expires = t
	}
	return c, nil
}

// containerCredentials reads ECS / EKS Pod Identity credentials.
func (a *awsChain) containerCredentials(ctx context.Context, u string) (awsCredentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return awsCredentials{}, fmt.Errorf("container credentials endpoint: %w", err)
	}
	token := a.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
	if file := a.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); file != "" {
		b, err := a.readFile(file)
		if err != nil {
			return awsCredentials{}, fmt.Errorf("reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %w", unwrapPathError(err))
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	var out endpointCredentials
	if err := a.getJSON(req, "container credentials", &out); err != nil {
		return awsCredentials{}, err
	}
	return out.credentials("the container credentials endpoint")
}

// instanceRole reads the EC2 instance role's credentials with IMDSv2.
func (a *awsChain) instanceRole(ctx context.Context) (awsCredentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.imds+"/latest/api/token", nil)
	if err != nil {
		return awsCredentials{}, err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := a.client.Do(req)
	if err != nil {
		return awsCredentials{}, err
	}
	token, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return awsCredentials{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return awsCredentials{}, &cloudError{Op: "IMDS token", StatusCode: resp.StatusCode}
	}
	get := func(path string) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, a.imds+path, nil)
		if err == nil {
			r.Header.Set("X-aws-ec2-metadata-token", string(token))
		}
		return r, err
	}
	r, err := get("/latest/meta-data/iam/security-credentials/")
	if err != nil {
		return awsCredentials{}, err
	}
	resp, err = a.client.Do(r)
	if err != nil {
		return awsCredentials{}, err
	}
	roles, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return awsCredentials{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return awsCredentials{}, &cloudError{Op: "IMDS instance role", StatusCode: resp.StatusCode, Message: "the instance has no IAM role"}
	}
	role, _, _ := strings.Cut(strings.TrimSpace(string(roles)), "\n")
	r, err = get("/latest/meta-data/iam/security-credentials/" + url.PathEscape(role))
	if err != nil {
		return awsCredentials{}, err
	}
	var out endpointCredentials
	if err := a.getJSON(r, "IMDS credentials", &out); err != nil {
		return awsCredentials{}, err
	}
	return out.credentials("the instance metadata service")
}

func (a *awsChain) getJSON(req *http.Request, op string, out any) error {
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &cloudError{Op: op, StatusCode: resp.StatusCode}
	}
	return readJSON(resp, out)
}

// jsonNumberTime reads AWS JSON 1.1 timestamps (epoch seconds, possibly
// fractional).
func jsonNumberTime(n json.Number) (time.Time, error) {
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
}
