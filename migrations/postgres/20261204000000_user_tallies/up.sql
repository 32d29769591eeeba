-- How many users there are with each status and role, for the totals of GET
-- /api/auth/users (X-Total-Count) without counting 100 000 rows on every page.
--
-- Triggers append a +1 or -1 row for every insert, delete and change of status or role,
-- in the same transaction as the change: a count is the SUM of the matching rows, exact in
-- any snapshot. Appending (never updating one row per group) keeps concurrent
-- registrations from contending for a hot row. The maintenance pass folds the rows into
-- one per group now and then (storage's `prune`), so the table stays a few rows long.
CREATE TABLE user_tallies (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL,
    n BIGINT NOT NULL
);

INSERT INTO user_tallies (status, is_admin, n)
SELECT status, is_admin, COUNT(*) FROM users GROUP BY status, is_admin;

-- Sums read the index alone. After many changes the table's pages are mostly empty (the
-- folded rows' space is reused, not returned), and a scan would read every one of them.
CREATE INDEX user_tallies_group_idx ON user_tallies (status, is_admin, n);

CREATE FUNCTION user_tallies_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO user_tallies (status, is_admin, n) VALUES (OLD.status, OLD.is_admin, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO user_tallies (status, is_admin, n) VALUES (NEW.status, NEW.is_admin, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_tallies_insert_delete AFTER INSERT OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION user_tallies_track();

-- Updates that leave status and role alone (most of them) leave the tallies alone.
CREATE TRIGGER user_tallies_update AFTER UPDATE OF status, is_admin ON users
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.is_admin IS DISTINCT FROM NEW.is_admin)
EXECUTE FUNCTION user_tallies_track();

-- TRUNCATE fires no row triggers.
CREATE FUNCTION user_tallies_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_tallies;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_tallies_truncate AFTER TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION user_tallies_clear();
