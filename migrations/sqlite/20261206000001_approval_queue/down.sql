-- Back to the schema before the approval queue: rejected users go back to pending, the
-- columns go, the CHECK loses `rejected` (the same rebuild as up.sql).

PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
UPDATE users SET status = 'pending' WHERE status = 'rejected';

CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'disabled')),
    created_at TIMESTAMP NOT NULL,
    approved_at TIMESTAMP,
    approved_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    token_version BIGINT NOT NULL DEFAULT 0,
    email_skeleton TEXT
);

INSERT INTO users_new (id, email, password_hash, is_admin, status, created_at, approved_at, approved_by, token_version, email_skeleton)
SELECT id, email, password_hash, is_admin, status, created_at, approved_at, approved_by, token_version, email_skeleton FROM users;

-- AUTOINCREMENT: ids of users deleted at the end must stay used. The copy made the new
-- table's counter the highest id copied; the old counter may be higher.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'users_new', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users_new');
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0))
WHERE name = 'users_new';

DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- What went with the old table: its indexes and triggers (the FTS5 email index and the
-- tallies, as their own migrations made them).
CREATE INDEX users_admin_status_idx ON users (is_admin, status);
CREATE INDEX users_approved_by_idx ON users (approved_by);
CREATE INDEX users_status_id_idx ON users (status, id);
CREATE INDEX users_email_skeleton_idx ON users (email_skeleton);
CREATE TRIGGER users_email_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_email_search (rowid, email) VALUES (new.id, new.email);
END;

CREATE TRIGGER users_email_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
    VALUES ('delete', old.id, old.email);
END;

CREATE TRIGGER users_email_search_update AFTER UPDATE OF id, email ON users
WHEN old.id IS NOT new.id OR old.email IS NOT new.email BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
    VALUES ('delete', old.id, old.email);
    INSERT INTO users_email_search (rowid, email) VALUES (new.id, new.email);
END;

CREATE TRIGGER user_tallies_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_tallies (status, is_admin, n) VALUES (new.status, new.is_admin, 1);
END;

CREATE TRIGGER user_tallies_delete AFTER DELETE ON users BEGIN
    INSERT INTO user_tallies (status, is_admin, n) VALUES (old.status, old.is_admin, -1);
END;

CREATE TRIGGER user_tallies_update AFTER UPDATE OF status, is_admin ON users
WHEN old.status IS NOT new.status OR old.is_admin IS NOT new.is_admin BEGIN
    INSERT INTO user_tallies (status, is_admin, n)
    VALUES (old.status, old.is_admin, -1), (new.status, new.is_admin, 1);
END;

COMMIT;
PRAGMA foreign_keys = ON;
