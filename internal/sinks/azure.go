package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Azure upload tuning: a Put holds at most azureConcurrency blocks of
// azureBlockSize in memory (16 MiB), whatever the object's size.
const (
	azureBlockSize   = 4 << 20
	azureConcurrency = 4
)

type azureSink struct {
	container *container.Client
	store     string
	secrets   []string
}

func newAzure(cfg Config, getenv func(string) string) (*azureSink, error) {
	s := &azureSink{store: fmt.Sprintf("azure_blob container %q", cfg.Bucket)}
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{
		// A few quick retries of transient failures; 404 and 403 are never
		// retried and come back at once.
		Retry: policy.RetryOptions{MaxRetries: 3, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second},
	}}
	var client *azblob.Client
	accountURL := cfg.AccountURL
	if accountURL == "" {
		accountURL = cfg.Endpoint
	}
	connEnv := cfg.ConnectionStringEnv
	if connEnv == "" && accountURL == "" {
		connEnv = "AZURE_STORAGE_CONNECTION_STRING"
	}
	if connEnv != "" {
		conn, err := requireEnv(getenv, s.store, connEnv)
		if err != nil {
			return nil, err
		}
		s.secrets = connectionStringSecrets(conn)
		client, err = azblob.NewClientFromConnectionString(conn, opts)
		if err != nil {
			return nil, scrub(fmt.Errorf("%s: connection string in %s: %w", s.store, connEnv, err), s.secrets)
		}
	} else {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("%s: default Azure credential: %w", s.store, err)
		}
		if client, err = azblob.NewClient(accountURL, cred, opts); err != nil {
			return nil, fmt.Errorf("%s: account URL %s: %w", s.store, accountURL, err)
		}
	}
	s.container = client.ServiceClient().NewContainerClient(cfg.Bucket)
	return s, nil
}

// connectionStringSecrets returns the parts of an Azure connection string
// that must never show in an error: the whole string, the account key and
// the shared access signature (and its sig parameter).
func connectionStringSecrets(conn string) []string {
	secrets := []string{conn}
	for part := range strings.SplitSeq(conn, ";") {
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "accountkey":
			secrets = append(secrets, value)
		case "sharedaccesssignature":
			secrets = append(secrets, value)
			for param := range strings.SplitSeq(value, "&") {
				if sig, ok := strings.CutPrefix(param, "sig="); ok {
					secrets = append(secrets, sig)
				}
			}
		}
	}
	return secrets
}

func (s *azureSink) fail(ctx context.Context, op, key string, err error) error {
	return opError(ctx, s.store, op, key, azureError(op, err), s.secrets)
}

// Put implements Sink. UploadStream stages the object as blocks and
// commits the block list last (an object of one block goes up in one
// request): until the commit there is no blob, so a failed Put leaves
// none (uncommitted blocks are not an object and Azure drops them).
func (s *azureSink) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := validateKey(key); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	hr := newHashingReader(ctx, r)
	ct := contentType(key)
	_, err := s.container.NewBlockBlobClient(key).UploadStream(ctx, hr, &blockblob.UploadStreamOptions{
		BlockSize:   azureBlockSize,
		Concurrency: azureConcurrency,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &ct},
	})
	if err != nil {
		return Object{}, s.fail(ctx, "put", key, hr.cause(err))
	}
	return hr.object(key), nil
}

// Open implements Sink.
func (s *azureSink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	resp, err := s.container.NewBlobClient(key).DownloadStream(ctx, nil)
	if err != nil {
		return nil, s.fail(ctx, "open", key, err)
	}
	return resp.Body, nil
}

// List implements Sink.
func (s *azureSink) List(ctx context.Context, prefix string) ([]Object, error) {
	var objects []Object
	pages := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pages.More() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			o := Object{Key: *b.Name}
			if b.Properties != nil && b.Properties.ContentLength != nil {
				o.Size = *b.Properties.ContentLength
			}
			objects = append(objects, o)
		}
	}
	// Azure lists in its own collation; the contract is byte order.
	sort.Slice(objects, func(i, j int) bool { return objects[i].Key < objects[j].Key })
	return objects, nil
}

// Delete implements Sink. The blob's snapshots go with it.
func (s *azureSink) Delete(ctx context.Context, key string) error {
	include := blob.DeleteSnapshotsOptionTypeInclude
	_, err := s.container.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: &include})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// azureError maps the Azure SDK's errors to the package's sentinels, by
// the service's error code first and the HTTP status second. Its own text
// is the code and status only: the SDK's is a multi-line dump of the
// request and the response.
func azureError(op string, err error) error {
	var resp *azcore.ResponseError
	if !errors.As(err, &resp) {
		return err
	}
	detail := fmt.Sprintf("%s, HTTP %d", resp.ErrorCode, resp.StatusCode)
	switch bloberror.Code(resp.ErrorCode) {
	case bloberror.ContainerNotFound:
		return &sdkError{kind: ErrBucketNotFound, detail: detail, err: err}
	case bloberror.BlobNotFound:
		return &sdkError{kind: ErrNotFound, detail: detail, err: err}
	case bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
		bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationResourceTypeMismatch,
		bloberror.AuthorizationSourceIPMismatch, bloberror.AuthorizationProtocolMismatch,
		bloberror.AuthorizationServiceMismatch, bloberror.InsufficientAccountPermissions,
		bloberror.AccountIsDisabled:
		return &sdkError{kind: ErrAccessDenied, detail: detail, err: err}
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		if op == "put" || op == "list" {
			return &sdkError{kind: ErrBucketNotFound, detail: detail, err: err}
		}
		return &sdkError{kind: ErrNotFound, detail: detail, err: err}
	case http.StatusForbidden, http.StatusUnauthorized:
		return &sdkError{kind: ErrAccessDenied, detail: detail, err: err}
	}
	return &sdkError{detail: detail, err: err}
}
