package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// ConsoleSession is a console session: the API key it stands for and the
// token that its requests must carry in a header.
type ConsoleSession struct {
	Key       audex.APIKey
	CSRFToken string
	ExpiresAt time.Time
}

// CreateConsoleSession stores a session of key until expiresAt, found by
// tokenHash (the SHA-256 of the cookie's token), records
// audit.console_signed_in in the key's tenant, and deletes the sessions
// that have expired.
func CreateConsoleSession(ctx context.Context, db DBTX, tokenHash []byte, key audex.APIKey, csrfToken string, expiresAt time.Time) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= now()`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO console_sessions (token_hash, key_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)`,
			tokenHash, key.ID, csrfToken, expiresAt); err != nil {
			return err
		}
		return recordConsoleEvent(ctx, tx, key, "audit.console_signed_in")
	})
	if err != nil {
		return fmt.Errorf("create console session: %w", translate(err))
	}
	return nil
}

// recordConsoleEvent records a console session's start or end in its
// key's tenant, by the key.
func recordConsoleEvent(ctx context.Context, tx pgx.Tx, key audex.APIKey, action string) error {
	return RecordAuditEvent(ctx, tx, key.TenantID, audex.Event{Action: action, Actor: audex.KeyActor(key), Target: audex.NewTarget("api_key", key.ID)})
}

// ConsoleSessionByHash returns the unexpired session of tokenHash with its
// key (revoked or not: the caller decides), or ErrNotFound.
func ConsoleSessionByHash(ctx context.Context, db DBTX, tokenHash []byte) (ConsoleSession, error) {
	return queryOne(ctx, db, "find console session", func(row pgx.CollectableRow) (ConsoleSession, error) {
		var s ConsoleSession
		var err error
		s.Key, err = scanKeyAnd(row, &s.CSRFToken, &s.ExpiresAt)
		s.ExpiresAt = s.ExpiresAt.UTC()
		return s, err
	}, `SELECT `+selectKeyColumns+`, s.csrf_token, s.expires_at
		FROM api_keys JOIN (SELECT key_id, csrf_token, expires_at FROM console_sessions
			WHERE token_hash = $1 AND expires_at > now()) s ON s.key_id = api_keys.id`, tokenHash)
}

// DeleteConsoleSession ends the session of tokenHash, a session of key,
// and records audit.console_signed_out; it is not an error when there is
// none (nothing is recorded then).
func DeleteConsoleSession(ctx context.Context, db DBTX, tokenHash []byte, key audex.APIKey) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, tokenHash)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return recordConsoleEvent(ctx, tx, key, "audit.console_signed_out")
	})
	if err != nil {
		return fmt.Errorf("delete console session: %w", translate(err))
	}
	return nil
}
