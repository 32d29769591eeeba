-- Passkeys (the MFA issue): WebAuthn discoverable credentials. credential_id is the
-- credential's id in base 64 (URL-safe, unpadded), unique across users (a login finds the
-- passkey by it); data is the WebAuthn library's record of the passkey (public key,
-- signature counter, backup state) as JSON. Gone with their user. The ceremonies' states
-- are kept in mfa_challenges (purposes passkey_registration, passkey_login).
CREATE TABLE passkeys (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);
