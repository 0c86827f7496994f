package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/image-swapper/image-swapper/internal/config"
)

// Why credentials and tokens are renewed before they expire, and how long
// a role is assumed for.
const (
	// credentialMargin: an ECR token is renewed this long before it
	// expires, so that a push that starts with it finishes with it.
	credentialMargin = 5 * time.Minute
	// roleSessionName names the sessions of targetProvider.ecr.assumeRoleArn
	// in CloudTrail.
	roleSessionName = "image-swapper"
	roleDuration    = time.Hour
)

// ECR creates repositories in Amazon ECR before pushes and supplies push
// credentials (GetAuthorizationToken), through the AWS SDK for Go v2. The
// SDK's default chain finds the credentials, as every AWS tool does:
// environment keys, shared config and credentials files (profiles,
// role_arn with source_profile, SSO), IRSA web identity, ECS and EKS Pod
// Identity container credentials, and the EC2 instance role (IMDSv2). The
// SDK also resolves each region's endpoints in every partition (China,
// GovCloud), and honours AWS_ENDPOINT_URL_ECR and AWS_ENDPOINT_URL_STS.
// targetProvider.ecr.assumeRoleArn is then assumed with STS on top.
type ECR struct {
	cfg config.ECR
	// endpoint, when set, is the BaseEndpoint of every AWS client the SDK
	// builds (ECR and STS), so that tests reach a local server.
	endpoint string
	now      func() time.Time

	mu           sync.Mutex
	client       *ecr.Client // built on first use
	token        *authn.AuthConfig
	tokenExpires time.Time
}

// NewECR builds the ECR provider for cfg. It does no I/O: the AWS
// configuration is loaded on first use, so that a broken profile is
// reported by the call that needs it, and a later call tries again.
func NewECR(cfg config.ECR) *ECR {
	return &ECR{cfg: cfg, now: time.Now}
}

// api returns the ECR client, loading the AWS configuration the first
// time it succeeds.
func (e *ECR) api(ctx context.Context) (*ecr.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(e.cfg.Region)}
	if e.endpoint != "" {
		opts = append(opts, awsconfig.WithBaseEndpoint(e.endpoint))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if role := e.cfg.AssumeRoleARN; role != "" {
		// The chain's credentials only sign the AssumeRole call; the
		// cache renews the role's before they expire.
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), role,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = roleSessionName
				o.Duration = roleDuration
			}))
	}
	e.client = ecr.NewFromConfig(awsCfg)
	return e.client, nil
}

// EnsureRepository creates repository with the configured tags, tag
// mutability, scan-on-push and encryption. When it exists already, the
// access and lifecycle policies are applied again all the same, so that a
// config change reaches repositories created before it.
func (e *ECR) EnsureRepository(ctx context.Context, repository string) error {
	client, err := e.api(ctx)
	if err != nil {
		return fmt.Errorf("ECR CreateRepository: %w", err)
	}
	in := &ecr.CreateRepositoryInput{
		RegistryId:     optional(e.cfg.AccountID),
		RepositoryName: aws.String(repository),
	}
	if e.cfg.ImageTagMutability != "" {
		in.ImageTagMutability = ecrtypes.ImageTagMutability(e.cfg.ImageTagMutability)
	}
	for _, t := range e.cfg.Tags {
		in.Tags = append(in.Tags, ecrtypes.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	if e.cfg.ScanOnPush {
		in.ImageScanningConfiguration = &ecrtypes.ImageScanningConfiguration{ScanOnPush: true}
	}
	if e.cfg.EncryptionType != "" {
		in.EncryptionConfiguration = &ecrtypes.EncryptionConfiguration{
			EncryptionType: ecrtypes.EncryptionType(e.cfg.EncryptionType),
			KmsKey:         optional(e.cfg.KMSKey),
		}
	}
	_, err = client.CreateRepository(ctx, in)
	var exists *ecrtypes.RepositoryAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return awsError("ECR CreateRepository", err)
	}
	if e.cfg.AccessPolicy != "" {
		_, err := client.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{
			RegistryId:     optional(e.cfg.AccountID),
			RepositoryName: aws.String(repository),
			PolicyText:     aws.String(e.cfg.AccessPolicy),
		})
		if err != nil {
			return awsError("ECR SetRepositoryPolicy", err)
		}
	}
	if e.cfg.LifecyclePolicy != "" {
		_, err := client.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{
			RegistryId:          optional(e.cfg.AccountID),
			RepositoryName:      aws.String(repository),
			LifecyclePolicyText: aws.String(e.cfg.LifecyclePolicy),
		})
		if err != nil {
			return awsError("ECR PutLifecyclePolicy", err)
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

	client, err := e.api(ctx)
	if err != nil {
		return nil, fmt.Errorf("ECR GetAuthorizationToken: %w", err)
	}
	out, err := client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, awsError("ECR GetAuthorizationToken", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, errors.New("ECR GetAuthorizationToken: answered no authorization data")
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return nil, errors.New("ECR GetAuthorizationToken: the token is not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("ECR GetAuthorizationToken: the token is not user:password")
	}
	expires := e.now().Add(time.Hour)
	if d.ExpiresAt != nil {
		expires = *d.ExpiresAt
	}
	auth := &authn.AuthConfig{Username: user, Password: pass}
	e.mu.Lock()
	e.token, e.tokenExpires = auth, expires
	e.mu.Unlock()
	t := *auth
	return &t, nil
}

// optional is nil for "", so that the SDK leaves the field out.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// awsError turns an SDK error into a cloudError named for op, so that
// Retryable and the messages treat every cloud alike. When the call failed
// before it was sent because credentials could not be had (a refused
// AssumeRole, an unreachable credentials endpoint, no source at all), the
// message says so and names the credential call that failed. The SDK's
// errors hold no secrets.
func awsError(op string, err error) error {
	// The SDK nests the operation that failed inside the one that needed
	// it: ECR CreateRepository, then STS AssumeRole for its credentials.
	var ops []*smithy.OperationError
	for e := err; ; {
		var oe *smithy.OperationError
		if !errors.As(e, &oe) {
			break
		}
		ops = append(ops, oe)
		e = oe.Err
	}
	cause := err
	if len(ops) > 0 {
		cause = ops[0].Err
	}
	ce := &cloudError{Op: op}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		ce.StatusCode = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		ce.Code, ce.Message = ae.ErrorCode(), ae.ErrorMessage()
	}
	answered := ce.StatusCode != 0 || ce.Code != ""
	if len(ops) > 1 {
		inner := ops[len(ops)-1]
		if !answered {
			return fmt.Errorf("%s: getting AWS credentials: %w", op, cause)
		}
		ce.Op = inner.ServiceID + " " + inner.OperationName
		return fmt.Errorf("%s: getting AWS credentials: %w", op, ce)
	}
	if !answered {
		return fmt.Errorf("%s: %w", op, cause)
	}
	return ce
}
