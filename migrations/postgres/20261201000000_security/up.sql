-- Tokens revoked before their expiry (logout). Pruned once expired.
CREATE TABLE revoked_tokens (
    token_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

-- Brute-force counters: failed logins per account and per address, registrations per address.
CREATE TABLE throttle_counters (
    scope TEXT NOT NULL,
    counter_key TEXT NOT NULL,
    count BIGINT NOT NULL,
    since TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (scope, counter_key)
);

-- The audit log. No foreign keys: entries outlive the users they name.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    action TEXT NOT NULL,
    actor_id BIGINT,
    target_id BIGINT,
    address TEXT,
    detail TEXT
);
CREATE INDEX audit_log_action_idx ON audit_log (action);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id);
CREATE INDEX audit_log_target_idx ON audit_log (target_id);

-- Ed25519 signing keys (GATEHOUSE_JWT_ALGORITHM=EdDSA); the seed is secret.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    seed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activates_at TIMESTAMP NOT NULL
);
