package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Admin is a client of the MinIO server that scripts/emulators.sh
// started, for creating and emptying the benchmark's bucket.
func (b *bench) s3Admin() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(b.cfg.s3Endpoint), UsePathStyle: true, Region: b.cfg.s3Region,
		Credentials: credentials.NewStaticCredentialsProvider(b.cfg.s3AccessKeyID, b.cfg.s3SecretKey, ""),
	})
}

// createBucket creates an empty bucket of a random name.
func (b *bench) createBucket(ctx context.Context) (string, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := "audex-bench-" + hex.EncodeToString(suffix)
	if _, err := b.s3Admin().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return "", fmt.Errorf("create s3 bucket %s at %s: %w", name, b.cfg.s3Endpoint, err)
	}
	return name, nil
}

// emptyBucket deletes every object of the bucket.
func (b *bench) emptyBucket(ctx context.Context, bucket string) error {
	client := b.s3Admin()
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3 bucket %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
				return fmt.Errorf("empty s3 bucket %s: %w", bucket, err)
			}
		}
	}
	return nil
}

// deleteBucket empties the bucket and deletes it.
func (b *bench) deleteBucket(ctx context.Context, bucket string) error {
	if err := b.emptyBucket(ctx, bucket); err != nil {
		return err
	}
	if _, err := b.s3Admin().DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("delete s3 bucket %s: %w", bucket, err)
	}
	return nil
}
