-- Multi-factor sign-in (the MFA issue).

-- A user's TOTP factor: the secret sealed with a key derived from the service's secret
-- material (`MfaKeys::seal_totp`, base 64), pending until confirmed_at, and the last
-- 30-second step a code was accepted for (a code is accepted at most once). Gone with
-- their user.
CREATE TABLE totp_factors (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    last_step BIGINT,
    created_at TIMESTAMP NOT NULL
);

-- Recovery codes, stored as HMAC-SHA256 bound to their user
-- (`MfaKeys::recovery_code_hash`); each spent once.
CREATE TABLE recovery_codes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    spent_at TIMESTAMP
);
CREATE UNIQUE INDEX recovery_codes_user_hash_idx ON recovery_codes (user_id, code_hash);

-- Challenges under way: a login waiting for its second step (named by the SHA-256 of its
-- mfa_token), a passkey registration or login (with the ceremony's state). Single-use,
-- dead after 5 wrong tries or at expires_at; pruned once expired.
CREATE TABLE mfa_challenges (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL CHECK (purpose IN ('login_mfa', 'passkey_registration', 'passkey_login')),
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    state TEXT,
    wrong_tries BIGINT NOT NULL DEFAULT 0 CHECK (wrong_tries >= 0),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);
