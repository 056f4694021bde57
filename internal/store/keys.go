package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

const selectKeyColumns = "id, tenant_id, name, scopes, created_at, last_used_at, revoked_at"

func scanKey(row pgx.CollectableRow) (audex.APIKey, error) { return scanKeyAnd(row) }

// scanKeyAnd is scanKey for a row whose selectKeyColumns are followed by
// more columns, scanned into extra.
func scanKeyAnd(row pgx.Row, extra ...any) (audex.APIKey, error) {
	var k audex.APIKey
	err := row.Scan(append([]any{&k.ID, &k.TenantID, &k.Name, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt}, extra...)...)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// CreateAPIKey stores a new key for tenantID (creating the tenant on first
// use) and records audit.key_created in the tenant, in one transaction.
// hash is audex.HashKey of the plain key.
func CreateAPIKey(ctx context.Context, db DBTX, tenantID, name string, scopes []string, hash []byte) (audex.APIKey, error) {
	var key audex.APIKey
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			INSERT INTO api_keys (id, tenant_id, name, scopes, key_hash) VALUES ($1, $2, $3, $4, $5)
			RETURNING `+selectKeyColumns, audex.NewID("key"), tenantID, name, scopes, hash)
		if err != nil {
			return err
		}
		if key, err = pgx.CollectExactlyOneRow(rows, scanKey); err != nil {
			return err
		}
		return recordSystemEvent(ctx, tx, tenantID, "audit.key_created", audex.NewTarget("api_key", key.ID))
	})
	if err != nil {
		return audex.APIKey{}, fmt.Errorf("create api key: %w", translate(err))
	}
	return key, nil
}

// ListAPIKeys returns the tenant's keys, oldest first.
func ListAPIKeys(ctx context.Context, db DBTX, tenantID string) ([]audex.APIKey, error) {
	return listAPIKeys(ctx, db, `WHERE tenant_id = $1`, tenantID)
}

// ListAllAPIKeys returns every tenant's keys, oldest first (for the
// operator's `api keys list`).
func ListAllAPIKeys(ctx context.Context, db DBTX) ([]audex.APIKey, error) {
	return listAPIKeys(ctx, db, ``)
}

func listAPIKeys(ctx context.Context, db DBTX, where string, args ...any) ([]audex.APIKey, error) {
	return queryAll(ctx, db, "list api keys", scanKey, `SELECT `+selectKeyColumns+` FROM api_keys `+where+` ORDER BY created_at, id`, args...)
}

// RevokeAPIKey revokes the key with the given id or plain-key hash and, the
// first time only, records audit.key_revoked in its tenant. Revoking a
// revoked key returns it unchanged. ErrNotFound when no key matches.
func RevokeAPIKey(ctx context.Context, db DBTX, id string, hash []byte) (audex.APIKey, error) {
	var key audex.APIKey
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+selectKeyColumns+` FROM api_keys
			WHERE id = $1 OR key_hash = $2 FOR UPDATE`, id, hash)
		if err != nil {
			return err
		}
		if key, err = pgx.CollectExactlyOneRow(rows, scanKey); err != nil {
			return err
		}
		if key.RevokedAt != nil {
			return nil
		}
		now := time.Now().UTC()
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1`, key.ID, now); err != nil {
			return err
		}
		key.RevokedAt = &now
		return recordSystemEvent(ctx, tx, key.TenantID, "audit.key_revoked", audex.NewTarget("api_key", key.ID))
	})
	if err != nil {
		return audex.APIKey{}, fmt.Errorf("revoke api key: %w", translate(err))
	}
	return key, nil
}

// APIKeyByHash returns the key whose plain key hashes to hash, revoked or
// not, or ErrNotFound.
func APIKeyByHash(ctx context.Context, db DBTX, hash []byte) (audex.APIKey, error) {
	return queryOne(ctx, db, "find api key", scanKey, `SELECT `+selectKeyColumns+` FROM api_keys WHERE key_hash = $1`, hash)
}

// TouchAPIKey sets the key's last_used_at to now.
func TouchAPIKey(ctx context.Context, db DBTX, id string) error {
	if _, err := db.Exec(ctx, `UPDATE api_keys SET last_used_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("touch api key: %w", translate(err))
	}
	return nil
}

// recordSystemEvent writes an audit.* event by audex itself in tx.
func recordSystemEvent(ctx context.Context, tx pgx.Tx, tenantID, action string, target *audex.Target) error {
	return RecordAuditEvent(ctx, tx, tenantID, audex.Event{Action: action, Actor: audex.SystemActor(), Target: target})
}
