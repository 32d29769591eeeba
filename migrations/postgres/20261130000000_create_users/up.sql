-- Users. BIGSERIAL never hands out an id twice: tokens name their user by id.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'disabled')),
    created_at TIMESTAMP NOT NULL,
    approved_at TIMESTAMP,
    approved_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    token_version BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX users_status_idx ON users (status);
CREATE INDEX users_admin_status_idx ON users (is_admin, status);
CREATE INDEX users_approved_by_idx ON users (approved_by);

-- Values the service generates once and every instance must agree on (the JWT secret).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
