-- How many users there are with each status and role, for the totals of GET
-- /api/auth/users (X-Total-Count) without counting 100 000 rows on every page.
--
-- Triggers append a +1 or -1 row for every insert, delete and change of status or role,
-- in the same transaction as the change: a count is the SUM of the matching rows. The
-- maintenance pass folds the rows into one per group now and then (storage's `prune`), so
-- the table stays a few rows long. (The same design as on PostgreSQL, where appending
-- keeps concurrent registrations from contending for one hot row.)
CREATE TABLE user_tallies (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    status TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL,
    n BIGINT NOT NULL
);

INSERT INTO user_tallies (status, is_admin, n)
SELECT status, is_admin, COUNT(*) FROM users GROUP BY status, is_admin;

-- Sums read the index alone. After many changes the table's pages are mostly empty (the
-- folded rows' space is reused, not returned), and a scan would read every one of them.
CREATE INDEX user_tallies_group_idx ON user_tallies (status, is_admin, n);

CREATE TRIGGER user_tallies_insert AFTER INSERT ON users BEGIN
    INSERT INTO user_tallies (status, is_admin, n) VALUES (new.status, new.is_admin, 1);
END;

CREATE TRIGGER user_tallies_delete AFTER DELETE ON users BEGIN
    INSERT INTO user_tallies (status, is_admin, n) VALUES (old.status, old.is_admin, -1);
END;

-- Updates that leave status and role alone (most of them) leave the tallies alone.
CREATE TRIGGER user_tallies_update AFTER UPDATE OF status, is_admin ON users
WHEN old.status IS NOT new.status OR old.is_admin IS NOT new.is_admin BEGIN
    INSERT INTO user_tallies (status, is_admin, n)
    VALUES (old.status, old.is_admin, -1), (new.status, new.is_admin, 1);
END;
