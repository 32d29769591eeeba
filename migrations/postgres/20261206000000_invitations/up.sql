-- Invitations (the approval issue): a code an admin hands out so that someone may register
-- without waiting for approval. Only the code's SHA-256 is stored. Revoked invitations are
-- kept for the record. A use is counted in the registration's own transaction; the CHECK
-- keeps the count within the limit whatever a writer does.
CREATE TABLE invitations (
    id BIGSERIAL PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    email TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    note TEXT,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    expires_at TIMESTAMP NOT NULL,
    max_uses BIGINT NOT NULL CHECK (max_uses BETWEEN 1 AND 1000),
    uses BIGINT NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    revoked_at TIMESTAMP
);
CREATE INDEX invitations_created_by_idx ON invitations (created_by);
