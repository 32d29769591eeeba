-- Sessions (the sessions issue): one row per login, ended by logout, revocation or expiry.
-- Every access token names its session (`sid`) and every authenticated request reads the
-- session beside the user, so ending a session ends its access tokens at once: the
-- revoked-token list of the security issue is folded in here and dropped.
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    idle_expires_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    address TEXT,
    user_agent TEXT
);
-- A user's sessions, newest first.
CREATE INDEX sessions_user_idx ON sessions (user_id, id);

-- Refresh tokens by their SHA-256: the session's current one (spent_at NULL) and the spent
-- ones, kept while the session is, so that a spent token presented again is recognised.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at TIMESTAMP NOT NULL,
    spent_at TIMESTAMP
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Tokens issued before this migration carry no session: they are refused, and their
-- revocations are no longer needed.
DROP TABLE revoked_tokens;
