DROP TABLE refresh_tokens;
DROP TABLE sessions;
CREATE TABLE revoked_tokens (
    token_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);
