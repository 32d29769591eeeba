-- Device tokens (hardening round 2): a device that logged in to an account before is
-- throttled on its own failures only. Only the token's SHA-256 is stored.
CREATE TABLE device_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL
);
CREATE INDEX device_tokens_user_idx ON device_tokens (user_id);
CREATE INDEX device_tokens_used_idx ON device_tokens (last_used_at);

-- GATEHOUSE_AUDIT_RETENTION prunes by age.
CREATE INDEX audit_log_at_idx ON audit_log (at);
