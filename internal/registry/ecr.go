package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
)

// ecrTargetPrefix names ECR's JSON 1.1 operations in X-Amz-Target.
const ecrTargetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// ECR creates repositories in Amazon ECR before pushes and supplies push
// credentials (GetAuthorizationToken). It speaks ECR's JSON 1.1 API,
// signed with Signature Version 4, with credentials from the environment,
// IRSA, Pod Identity or the instance role, optionally through a role
// (AssumeRoleARN). AWS_ENDPOINT_URL_ECR and AWS_ENDPOINT_URL_STS override
// the endpoints.
type ECR struct {
	cfg      config.ECR
	endpoint string
	client   *http.Client
	chain    *awsChain
	now      func() time.Time

	mu           sync.Mutex
	creds        awsCredentials // after AssumeRole, if any
	haveCreds    bool
	token        *authn.AuthConfig
	tokenExpires time.Time
}

// NewECR builds the ECR provider for cfg; getenv is os.Getenv outside
// tests.
func NewECR(cfg config.ECR, getenv func(string) string) *ECR {
	client := &http.Client{Timeout: time.Minute}
	return &ECR{
		cfg:      cfg,
		endpoint: awsEndpoint(getenv, "ECR", "https://api.ecr."+cfg.Region+".amazonaws.com"),
		client:   client,
		chain:    newAWSChain(cfg.Region, getenv, client, time.Now),
		now:      time.Now,
	}
}

type ecrTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type ecrCreateRepository struct {
	RegistryID                 string    `json:"registryId,omitempty"`
	RepositoryName             string    `json:"repositoryName"`
	Tags                       []ecrTag  `json:"tags,omitempty"`
	ImageTagMutability         string    `json:"imageTagMutability,omitempty"`
	ImageScanningConfiguration *ecrScan  `json:"imageScanningConfiguration,omitempty"`
	EncryptionConfiguration    *ecrCrypt `json:"encryptionConfiguration,omitempty"`
}

type ecrScan struct {
	ScanOnPush bool `json:"scanOnPush"`
}

type ecrCrypt struct {
	EncryptionType string `json:"encryptionType"`
	KMSKey         string `json:"kmsKey,omitempty"`
}

type ecrRepositoryPolicy struct {
	RegistryID     string `json:"registryId,omitempty"`
	RepositoryName string `json:"repositoryName"`
	PolicyText     string `json:"policyText"`
}

type ecrLifecyclePolicy struct {
	RegistryID          string `json:"registryId,omitempty"`
	RepositoryName      string `json:"repositoryName"`
	LifecyclePolicyText string `json:"lifecyclePolicyText"`
}

// EnsureRepository creates repository with the configured tags, tag
// mutability, scan-on-push and encryption. When it exists already, the
// access and lifecycle policies are applied again all the same, so that a
// config change reaches repositories created before it.
func (e *ECR) EnsureRepository(ctx context.Context, repository string) error {
	in := ecrCreateRepository{
		RegistryID:         e.cfg.AccountID,
		RepositoryName:     repository,
		ImageTagMutability: e.cfg.ImageTagMutability,
	}
	for _, t := range e.cfg.Tags {
		in.Tags = append(in.Tags, ecrTag(t))
	}
	if e.cfg.ScanOnPush {
		in.ImageScanningConfiguration = &ecrScan{ScanOnPush: true}
	}
	if e.cfg.EncryptionType != "" {
		in.EncryptionConfiguration = &ecrCrypt{EncryptionType: e.cfg.EncryptionType, KMSKey: e.cfg.KMSKey}
	}
	err := e.call(ctx, "CreateRepository", in, nil)
	var ce *cloudError
	if err != nil && !(errors.As(err, &ce) && ce.Code == "RepositoryAlreadyExistsException") {
		return err
	}
	if e.cfg.AccessPolicy != "" {
		if err := e.call(ctx, "SetRepositoryPolicy", ecrRepositoryPolicy{e.cfg.AccountID, repository, e.cfg.AccessPolicy}, nil); err != nil {
			return err
		}
	}
	if e.cfg.LifecyclePolicy != "" {
		if err := e.call(ctx, "PutLifecyclePolicy", ecrLifecyclePolicy{e.cfg.AccountID, repository, e.cfg.LifecyclePolicy}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Authorization returns push credentials for the ECR registry from
// GetAuthorizationToken, reused until shortly before they expire (12h).
func (e *ECR) Authorization(ctx context.Context) (*authn.AuthConfig, error) {
	e.mu.Lock()
	if e.token != nil && e.now().Before(e.tokenExpires.Add(-credentialMargin)) {
		t := *e.token
		e.mu.Unlock()
		return &t, nil
	}
	e.mu.Unlock()

	var out struct {
		AuthorizationData []struct {
			AuthorizationToken string      `json:"authorizationToken"`
			ExpiresAt          json.Number `json:"expiresAt"`
			ProxyEndpoint      string      `json:"proxyEndpoint"`
		} `json:"authorizationData"`
	}
	if err := e.call(ctx, "GetAuthorizationToken", struct{}{}, &out); err != nil {
		return nil, err
	}
	if len(out.AuthorizationData) == 0 {
		return nil, errors.New("ECR GetAuthorizationToken: answered no authorization data")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(d.AuthorizationToken)
	if err != nil {
		return nil, errors.New("ECR GetAuthorizationToken: the token is not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("ECR GetAuthorizationToken: the token is not user:password")
	}
	expires := e.now().Add(time.Hour)
	if d.ExpiresAt != "" {
		if t, err := jsonNumberTime(d.ExpiresAt); err == nil {
			expires = t
		}
	}
	auth := &authn.AuthConfig{Username: user, Password: pass}
	e.mu.Lock()
	e.token, e.tokenExpires = auth, expires
	e.mu.Unlock()
	t := *auth
	return &t, nil
}

// credentials returns AWS credentials, assuming the configured role.
func (e *ECR) credentials(ctx context.Context) (awsCredentials, error) {
	e.mu.Lock()
	if e.haveCreds && (e.creds.Expires.IsZero() || e.now().Before(e.creds.Expires.Add(-credentialMargin))) {
		c := e.creds
		e.mu.Unlock()
		return c, nil
	}
	e.mu.Unlock()
	creds, err := e.chain.retrieve(ctx)
	if err != nil {
		return awsCredentials{}, err
	}
	if e.cfg.AssumeRoleARN != "" {
		if creds, err = e.chain.assumeRole(ctx, creds, e.cfg.AssumeRoleARN); err != nil {
			return awsCredentials{}, fmt.Errorf("assuming role %s: %w", e.cfg.AssumeRoleARN, err)
		}
	}
	e.mu.Lock()
	e.creds, e.haveCreds = creds, true
	e.mu.Unlock()
	return creds, nil
}

// call runs one ECR operation.
func (e *ECR) call(ctx context.Context, op string, in, out any) error {
	creds, err := e.credentials(ctx)
	if err != nil {
		return fmt.Errorf("ECR %s: %w", op, err)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", ecrTargetPrefix+op)
	signV4(req, body, creds, e.cfg.Region, "ecr", e.now())
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("ECR %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := readJSON(resp, out); err != nil {
			return fmt.Errorf("ECR %s: %w", op, err)
		}
		return nil
	}
	var fault struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = readJSON(resp, &fault)
	code := fault.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return &cloudError{Op: "ECR " + op, StatusCode: resp.StatusCode, Code: code, Message: firstNonEmpty(fault.Message, fault.MessageU)}
}
