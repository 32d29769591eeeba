-- One-time codes (the recovery issue): a password reset or an email verification code,
-- sent by mail and stored only as its SHA-256 bound to its user and purpose
-- (`OneTimeCode::hash`). Spent once (spent_at), dead after 5 wrong tries or at
-- expires_at; an account is sent at most 3 of one purpose per hour (counted here by
-- created_at). Gone with their user.
CREATE TABLE one_time_codes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    wrong_tries BIGINT NOT NULL DEFAULT 0 CHECK (wrong_tries >= 0),
    spent_at TIMESTAMP
);
-- A user's codes of one purpose: the check, the count per hour, the cascade.
CREATE INDEX one_time_codes_user_idx ON one_time_codes (user_id, purpose, created_at);
-- Pruning of expired codes.
CREATE INDEX one_time_codes_expires_idx ON one_time_codes (expires_at);
