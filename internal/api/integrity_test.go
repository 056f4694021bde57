package api_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

type logTestBundle struct {
	*testBundle
	keys *integrity.Keys
}

func setupLogRoutes(t *testing.T) *logTestBundle {
	t.Helper()
	keys, err := integrity.ParseKeys(storetest.LogKey(t))
	require.NoError(t, err)
	return &logTestBundle{testBundle: setupWith(t, api.Config{Pool: storetest.Pool(t), LogVerifierKeys: keys.VerifierKeys()}), keys: keys}
}

// seal extends the tenant's log as the worker's seal job does.
func (b *logTestBundle) seal(t *testing.T) {
	t.Helper()
	for more := true; more; {
		var err error
		_, more, err = store.SealLog(t.Context(), b.pool, b.tenant, "audex", 1000, b.keys.Sign)
		require.NoError(t, err)
	}
}

// checkpoint reads a checkpoint through the route (query: "" or
// "?size=N") and checks its signature with the served public key alone.
func (b *logTestBundle) checkpoint(t *testing.T, query string) integrity.Checkpoint {
	t.Helper()
	pub := b.do(t, "GET", "/v1/audit/log/public-key", "", nil)
	require.Equal(t, http.StatusOK, pub.status)
	res := b.do(t, "GET", "/v1/audit/log/checkpoint"+query, b.key, nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	require.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
	c, err := integrity.OpenCheckpoint(res.body, strings.Fields(string(pub.body)))
	require.NoError(t, err)
	require.Equal(t, "audex/"+b.tenant, c.Origin)
	return c
}

// proveServed checks the event that the get route serves against the
// checkpoint c with the proof route's answer, and returns the check's
// error.
func (b *logTestBundle) proveServed(t *testing.T, id string, c integrity.Checkpoint, query string) error {
	t.Helper()
	body := b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil)
	require.Equal(t, http.StatusOK, body.status)
	var p audex.InclusionProof
	res := b.do(t, "GET", "/v1/audit/events/"+id+"/proof"+query, b.key, nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	res.decode(t, &p)
	require.Equal(t, c.Size, p.TreeSize)
	return tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.LeafIndex, leafHash(body.body))
}

func TestIntegrityLog(t *testing.T) {
	t.Parallel()

	t.Run("EveryServedEventIsProvedAgainstASignedCheckpointAndTheLogOnlyGrows", func(t *testing.T) {
		t.Parallel()
		b := setupLogRoutes(t)
		first := b.ingest(t, event("doc.read", "alice"), event("doc.write", "bob"), event("doc.read", "carol")).IDs
		res := b.do(t, "GET", "/v1/audit/log/checkpoint", b.key, nil)
		require.Equal(t, http.StatusNotFound, res.status, "no checkpoint before the first seal")
		res = b.do(t, "GET", "/v1/audit/events/"+first[0]+"/proof", b.key, nil)
		require.Equal(t, http.StatusConflict, res.status, "not sealed yet: %s", res.body)

		b.seal(t)
		old := b.checkpoint(t, "")
		for _, id := range first {
			require.NoError(t, b.proveServed(t, id, old, ""), "event %s", id)
		}

		second := b.ingest(t, event("doc.delete", "alice")).IDs
		res = b.do(t, "GET", "/v1/audit/events/"+second[0]+"/proof", b.key, nil)
		require.Equal(t, http.StatusConflict, res.status, "in no checkpoint yet: %s", res.body)
		b.seal(t)
		c := b.checkpoint(t, "")
		require.Greater(t, c.Size, old.Size)
		require.NoError(t, b.proveServed(t, second[0], c, ""))
		require.NoError(t, b.proveServed(t, first[1], old, "?size="+itoa(old.Size)), "a proof against an older checkpoint")
		require.Equal(t, old, b.checkpoint(t, "?size="+itoa(old.Size)))

		var consistency audex.ConsistencyProof
		res = b.do(t, "GET", "/v1/audit/log/consistency?from="+itoa(old.Size)+"&to="+itoa(c.Size), b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		res.decode(t, &consistency)
		require.NoError(t, tlog.CheckTree(consistency.Hashes, c.Size, c.Root, old.Size, old.Root))
	})

	t.Run("AnEventChangedBehindAudexsBackNoLongerVerifies", func(t *testing.T) {
		t.Parallel()
		b := setupLogRoutes(t)
		id := b.ingest(t, event("doc.read", "alice")).IDs[0]
		b.seal(t)
		c := b.checkpoint(t, "")
		require.NoError(t, b.proveServed(t, id, c, ""))
		_, err := b.pool.Exec(t.Context(), `UPDATE events SET action = 'doc.write' WHERE tenant_id = $1 AND id = $2`, b.tenant, id)
		require.NoError(t, err)
		require.Error(t, b.proveServed(t, id, c, ""), "the served event is not the sealed one")

		// A row written straight into the tables after the seal, with an
		// earlier received_at: no seal takes it, and the proof route says
		// so rather than "not sealed yet".
		storetest.ForgeEvent(t, b.pool, b.tenant, id, "forged-1")
		res := b.do(t, "GET", "/v1/audit/events/forged-1/proof", b.key, nil)
		require.Equal(t, http.StatusConflict, res.status, "body: %s", res.body)
		require.Contains(t, res.errorBody(t).Message, "written behind audex's back")
	})

	t.Run("ADeletedEventKeepsItsProof", func(t *testing.T) {
		t.Parallel()
		b := setupLogRoutes(t)
		id := b.ingest(t, event("doc.read", "alice")).IDs[0]
		body := b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil).body
		b.seal(t)
		c := b.checkpoint(t, "")
		require.Equal(t, http.StatusNoContent, b.do(t, "DELETE", "/v1/audit/events/"+id, b.key, nil).status)
		var p audex.InclusionProof
		res := b.do(t, "GET", "/v1/audit/events/"+id+"/proof", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		res.decode(t, &p)
		require.NoError(t, tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.LeafIndex, leafHash(body)))
	})

	t.Run("BadRequestsAndWalls", func(t *testing.T) {
		t.Parallel()
		b := setupLogRoutes(t)
		id := b.ingest(t, event("doc.read", "alice")).IDs[0]
		b.seal(t)
		c := b.checkpoint(t, "")
		for _, tc := range []struct {
			path   string
			status int
			field  string
		}{
			{"/v1/audit/log/checkpoint?size=abc", 400, "size"},
			{"/v1/audit/log/checkpoint?size=0", 400, "size"},
			{"/v1/audit/log/checkpoint?size=99999", 404, ""},
			{"/v1/audit/log/checkpoint?limit=1", 400, "limit"},
			{"/v1/audit/events/" + id + "/proof?size=-1", 400, "size"},
			{"/v1/audit/events/" + id + "/proof?size=99999", 404, ""},
			{"/v1/audit/events/nope/proof", 404, ""},
			{"/v1/audit/log/consistency?from=1", 400, "to"},
			{"/v1/audit/log/consistency?from=2&to=1", 400, "from"},
			{"/v1/audit/log/consistency?from=1&to=" + itoa(c.Size), 404, ""},
			{"/v1/audit/log/consistency?from=" + itoa(c.Size) + "&to=" + itoa(c.Size) + "&x=1", 400, "x"},
		} {
			res := b.do(t, "GET", tc.path, b.key, nil)
			require.Equal(t, tc.status, res.status, "%s: %s", tc.path, res.body)
			require.Equal(t, tc.field, res.errorBody(t).Field, tc.path)
		}
		res := b.do(t, "GET", "/v1/audit/log/consistency?from="+itoa(c.Size)+"&to="+itoa(c.Size), b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "a proof between a checkpoint and itself: %s", res.body)
		require.JSONEq(t, `{"from":`+itoa(c.Size)+`,"to":`+itoa(c.Size)+`,"hashes":[]}`, string(res.body))

		// Another tenant sees nothing of this log.
		other := storetest.NewKey(t, b.pool, storetest.NewTenant(t), audex.ScopeRead)
		require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/events/"+id+"/proof", other, nil).status)
		require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/log/checkpoint", other, nil).status)
		require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/log/checkpoint?size="+itoa(c.Size), other, nil).status)
		// The proofs need audit:read; the public key no key at all.
		writer := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeWrite)
		require.Equal(t, http.StatusForbidden, b.do(t, "GET", "/v1/audit/log/checkpoint", writer, nil).status)
		require.Equal(t, http.StatusUnauthorized, b.do(t, "GET", "/v1/audit/log/checkpoint", "", nil).status)
		pub := b.do(t, "GET", "/v1/audit/log/public-key", "", nil)
		require.Equal(t, strings.Join(b.keys.VerifierKeys(), "\n")+"\n", string(pub.body))
	})
}

// leafHash is the leaf of an event as a verifier computes it from the get
// route's body: SHA-256(0x00 || the body without its final newline).
func leafHash(body []byte) tlog.Hash {
	return tlog.RecordHash(bytes.TrimSuffix(body, []byte("\n")))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
