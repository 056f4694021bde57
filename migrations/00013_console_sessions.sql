-- +goose Up

-- Sessions of the console (docs/api.md, "Console"): a reader signs in with
-- an API key once and the browser then holds only a random token in an
-- HttpOnly cookie. The table keeps the token's SHA-256, never the token,
-- and the key it stands for: a revoked or deleted key ends its sessions.
-- csrf_token is sent back by the console in a header with every request
-- made with the session, which a page of another site cannot do.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY,
    key_id      text COLLATE "C" NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- +goose Down
DROP TABLE console_sessions;
