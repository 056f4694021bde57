package sinktest

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/audex-dev/audex/internal/sinks"
)

// privateServer is an object-store server that a test runs on its own,
// to stop and start again (the shared emulators of scripts/emulators.sh
// must stay up for other tests).
type privateServer struct {
	binEnv    string                          // the variable naming its binary
	args      func(port, dir string) []string // its arguments, to serve on 127.0.0.1:port from dir
	env       []string                        // added to its environment
	ready     string                          // a path it answers once it is up
	anyStatus bool                            // ready answers with any status, not only 200
	// stop is the signal that stops it; stop waits for its exit (and
	// kills it after 20 s).
	stop os.Signal
}

// run starts the server on a free port of 127.0.0.1 with a fresh data
// folder and returns its address (host:port) and functions that stop it
// and start it again on the same port and data. The test's cleanup stops
// it.
func (s privateServer) run(t *testing.T) (addr string, stop, start func()) {
	t.Helper()
	bin := RequireEnv(t, s.binEnv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr = ln.Addr().String()
	require.NoError(t, ln.Close())
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	probe := &http.Client{Timeout: 2 * time.Second}
	up := func() bool {
		res, err := probe.Get("http://" + addr + s.ready)
		if err != nil {
			return false
		}
		res.Body.Close()
		return s.anyStatus || res.StatusCode == http.StatusOK
	}
	var cmd *exec.Cmd
	start = func() {
		t.Helper()
		log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		require.NoError(t, err)
		defer log.Close()
		c := exec.Command(bin, s.args(port, dir)...)
		c.Env = append(os.Environ(), s.env...)
		c.Stdout, c.Stderr = log, log
		require.NoError(t, c.Start())
		cmd = c
		for deadline := time.Now().Add(20 * time.Second); !up(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				out, _ := os.ReadFile(logPath)
				t.Fatalf("%s did not answer on %s within 20 s; its log:\n%s", bin, addr, out)
			}
		}
	}
	stop = func() {
		c := cmd
		if c == nil {
			return
		}
		cmd = nil
		exited := make(chan struct{})
		go func() {
			_ = c.Wait()
			close(exited)
		}()
		_ = c.Process.Signal(s.stop)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	start()
	return addr, stop, start
}

// A PrivateStore runs a server of the test's own (privateServer) and
// returns the sinks.Config of a fresh bucket on it with the getenv to open
// it with, and functions that stop the server and start it again.
type PrivateStore func(t *testing.T) (cfg sinks.Config, getenv func(string) string, stop, start func())

// PrivateMinIO is a PrivateStore of MinIO, killed when stopped.
func PrivateMinIO(t *testing.T) (sinks.Config, func(string) string, func(), func()) {
	t.Helper()
	user, password := os.Getenv("AUDEX_TEST_S3_ACCESS_KEY_ID"), os.Getenv("AUDEX_TEST_S3_SECRET_ACCESS_KEY")
	addr, stop, start := privateServer{
		binEnv: "AUDEX_TEST_MINIO_BIN",
		args: func(port, dir string) []string {
			return []string{"server", dir, "--address", "127.0.0.1:" + port, "--console-address", "127.0.0.1:0", "--quiet"}
		},
		env:   []string{"MINIO_ROOT_USER=" + user, "MINIO_ROOT_PASSWORD=" + password, "MINIO_BROWSER=off", "MINIO_UPDATE=off"},
		ready: "/minio/health/ready",
		stop:  os.Kill,
	}.run(t)
	cfg := sinks.Config{Type: "s3", Bucket: RandomName("audex-private-"), Region: "us-east-1", Endpoint: "http://" + addr,
		AccessKeyIDEnv: "AUDEX_TEST_S3_ACCESS_KEY_ID", SecretAccessKeyEnv: "AUDEX_TEST_S3_SECRET_ACCESS_KEY"}
	admin := s3.New(s3.Options{BaseEndpoint: aws.String(cfg.Endpoint), UsePathStyle: true, Region: cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(user, password, "")})
	// MinIO may answer ready before its object layer is up (503,
	// XMinioServerNotInitialized): ask again for a while.
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err = admin.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)})
		if err == nil || !strings.Contains(err.Error(), "XMinioServerNotInitialized") || time.Now().After(deadline) {
			break
		}
	}
	require.NoError(t, err)
	return cfg, os.Getenv, stop, start
}

// PrivateFakeGCS is a PrivateStore of fake-gcs-server, started as
// scripts/emulators.sh starts it (its filesystem backend keeps the objects
// across a restart), killed when stopped.
func PrivateFakeGCS(t *testing.T) (sinks.Config, func(string) string, func(), func()) {
	t.Helper()
	addr, stop, start := privateServer{
		binEnv: "AUDEX_TEST_FAKE_GCS_BIN",
		args: func(port, dir string) []string {
			return []string{"-scheme", "http", "-host", "127.0.0.1", "-port", port,
				"-public-host", "127.0.0.1:" + port, "-external-url", "http://127.0.0.1:" + port,
				"-backend", "filesystem", "-filesystem-root", dir}
		},
		ready: "/storage/v1/b",
		stop:  os.Kill,
	}.run(t)
	cfg := sinks.Config{Type: "gcs", Bucket: RandomName("audex-private-")}
	admin, err := storage.NewClient(t.Context(), option.WithEndpoint("http://"+addr+"/storage/v1/"), option.WithoutAuthentication())
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.Bucket(cfg.Bucket).Create(t.Context(), "audex-test", nil))
	return cfg, func(k string) string {
		if k == "STORAGE_EMULATOR_HOST" {
			return addr
		}
		return os.Getenv(k)
	}, stop, start
}

// PrivateAzurite is a PrivateStore of Azurite's blob service, started as
// scripts/emulators.sh starts it, on the shared one's development account.
// It is stopped with SIGTERM, on which it saves its metadata: it writes
// them to disk only every 5 s otherwise, so a SIGKILL would lose the last
// blobs committed (which Azure itself never does).
func PrivateAzurite(t *testing.T) (sinks.Config, func(string) string, func(), func()) {
	t.Helper()
	shared := RequireEnv(t, "AUDEX_TEST_AZURE_CONNECTION_STRING")
	endpoint, err := url.Parse(RequireEnv(t, "AUDEX_TEST_AZURE_BLOB_ENDPOINT"))
	require.NoError(t, err)
	addr, stop, start := privateServer{
		binEnv: "AUDEX_TEST_AZURITE_BIN",
		args: func(port, dir string) []string {
			return []string{"--blobHost", "127.0.0.1", "--blobPort", port, "--location", dir,
				"--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"}
		},
		ready:     endpoint.Path + "?comp=list",
		anyStatus: true,
		stop:      syscall.SIGTERM,
	}.run(t)
	conn := strings.ReplaceAll(shared, endpoint.Host, addr)
	require.NotEqual(t, shared, conn, "the connection string names %s", endpoint.Host)
	const connEnv = "AUDEX_TEST_PRIVATE_AZURE_CONNECTION_STRING" // answered by the getenv below
	cfg := sinks.Config{Type: "azure_blob", Bucket: RandomName("audex-private-"), ConnectionStringEnv: connEnv}
	admin, err := azblob.NewClientFromConnectionString(conn, nil)
	require.NoError(t, err)
	_, err = admin.CreateContainer(t.Context(), cfg.Bucket, nil)
	require.NoError(t, err)
	return cfg, func(k string) string {
		if k == connEnv {
			return conn
		}
		return os.Getenv(k)
	}, stop, start
}
