package registry

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The AWS Signature Version 4 test suite (aws-sig-v4-test-suite, as kept
// in aws-c-auth's tests/aws-signing-test-suite/v4) and the worked IAM
// ListUsers example of AWS's signing documentation.
func TestSignV4MatchesAWSPublishedVectors(t *testing.T) {
	creds := awsCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	when := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	tests := []struct {
		name, method, url, service string
		headers                    map[string]string
		body                       string
		want                       string
	}{
		{"get-vanilla", http.MethodGet, "https://example.amazonaws.com/", "service", nil, "",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", http.MethodGet, "https://example.amazonaws.com/?Param2=value2&Param1=value1", "service", nil, "",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-x-www-form-urlencoded", http.MethodPost, "https://example.amazonaws.com/", "service",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "Param1=value1",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
		{"IAM ListUsers", http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", "iam",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, "",
			"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("User-Agent", "not signed")
			signV4(req, []byte(tt.body), creds, "us-east-1", tt.service, when)
			if got := req.Header.Get("Authorization"); got != tt.want {
				t.Errorf("Authorization =\n%s\nwant\n%s", got, tt.want)
			}
			if got := req.Header.Get("X-Amz-Date"); got != "20150830T123600Z" {
				t.Errorf("X-Amz-Date = %q", got)
			}
		})
	}
}

func TestSignV4SignsTheSessionToken(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "https://api.ecr.us-east-1.amazonaws.com/", nil)
	signV4(req, nil, awsCredentials{AccessKeyID: "ASIA", SecretAccessKey: "s", SessionToken: "tok"}, "us-east-1", "ecr", time.Unix(0, 0))
	if req.Header.Get("X-Amz-Security-Token") != "tok" || !strings.Contains(req.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date;x-amz-security-token,") {
		t.Errorf("headers = %v, want the session token set and signed", req.Header)
	}
}
