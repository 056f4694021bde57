package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3 upload tuning. A Put holds at most (s3Concurrency+1) parts in memory
// (32 MiB), whatever the object's size; objects below one part go up in one
// PutObject, larger ones as a multipart upload that is aborted on failure.
const (
	s3PartSize    = 8 << 20
	s3Concurrency = 3
)

type s3Sink struct {
	client  *s3.Client
	up      *transfermanager.Client
	bucket  string
	store   string
	secrets []string
}

func newS3(ctx context.Context, cfg Config, getenv func(string) string) (*s3Sink, error) {
	s := &s3Sink{bucket: cfg.Bucket, store: fmt.Sprintf("s3 bucket %q", cfg.Bucket)}
	opts := []func(*awsconfig.LoadOptions) error{
		// A few quick retries of transient failures; permanent ones (a
		// missing bucket, a refused signature) are never retried by the SDK
		// and come back at once.
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 2 * time.Second
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyIDEnv != "" || cfg.SecretAccessKeyEnv != "" {
		if cfg.AccessKeyIDEnv == "" || cfg.SecretAccessKeyEnv == "" {
			return nil, fmt.Errorf("%s: the access key id and secret access key variables go together", s.store)
		}
		id, err := requireEnv(getenv, s.store, cfg.AccessKeyIDEnv)
		if err != nil {
			return nil, err
		}
		secret, err := requireEnv(getenv, s.store, cfg.SecretAccessKeyEnv)
		if err != nil {
			return nil, err
		}
		var token string
		if cfg.SessionTokenEnv != "" {
			if token, err = requireEnv(getenv, s.store, cfg.SessionTokenEnv); err != nil {
				return nil, err
			}
		}
		s.secrets = []string{secret, token}
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, token)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, scrub(fmt.Errorf("%s: load AWS configuration: %w", s.store, err), s.secrets)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	s.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		// Objects uploaded in parts carry a checksum of checksums, which
		// GetObject cannot validate; the SDK would log that on every Open.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
	})
	// transfermanager, not the deprecated feature/s3/manager: both stream
	// an unsized reader as parts and abort the multipart upload on failure.
	s.up = transfermanager.New(s.client, func(o *transfermanager.Options) {
		o.PartSizeBytes = s3PartSize
		o.MultipartUploadThreshold = s3PartSize
		o.Concurrency = s3Concurrency
		// The abort of a failed multipart upload gets a context of its
		// own, so that it also happens when ctx was cancelled.
		o.FailTimeout = 30 * time.Second
	})
	return s, nil
}

func (s *s3Sink) fail(ctx context.Context, op, key string, err error) error {
	return opError(ctx, s.store, op, key, s3Error(err), s.secrets)
}

// Put implements Sink.
func (s *s3Sink) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := validateKey(key); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	hr := newHashingReader(ctx, r)
	_, err := s.up.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(key),
		Body:        hr,
		ContentType: aws.String(contentType(key)),
	})
	if err != nil {
		return Object{}, s.fail(ctx, "put", key, hr.cause(err))
	}
	return hr.object(key), nil
}

// Open implements Sink.
func (s *s3Sink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.fail(ctx, "open", key, err)
	}
	return out.Body, nil
}

// List implements Sink.
func (s *s3Sink) List(ctx context.Context, prefix string) ([]Object, error) {
	var objects []Object
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			objects = append(objects, Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	// S3 lists in byte order already; S3-compatible servers may not.
	sort.Slice(objects, func(i, j int) bool { return objects[i].Key < objects[j].Key })
	return objects, nil
}

// Delete implements Sink. S3 answers a delete of a missing key with success.
func (s *s3Sink) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// s3Error maps the S3 SDK's errors to the package's sentinels, by the
// service's error code first and its HTTP status second.
func s3Error(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	detail := api.ErrorCode()
	if msg := api.ErrorMessage(); msg != "" {
		detail += ": " + msg
	}
	switch api.ErrorCode() {
	case "NoSuchBucket":
		return &sdkError{kind: ErrBucketNotFound, detail: detail, err: err}
	case "NoSuchKey":
		return &sdkError{kind: ErrNotFound, detail: detail, err: err}
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
		"ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
		"InvalidSecurity", "NotSignedUp":
		return &sdkError{kind: ErrAccessDenied, detail: detail, err: err}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		switch resp.HTTPStatusCode() {
		case http.StatusForbidden, http.StatusUnauthorized:
			return &sdkError{kind: ErrAccessDenied, detail: detail, err: err}
		case http.StatusNotFound:
			// A HEAD-style answer without a code: the key is missing.
			return &sdkError{kind: ErrNotFound, detail: detail, err: err}
		}
	}
	return err
}
