DROP TRIGGER IF EXISTS user_tallies_truncate ON users;
DROP TRIGGER IF EXISTS user_tallies_update ON users;
DROP TRIGGER IF EXISTS user_tallies_insert_delete ON users;
DROP FUNCTION IF EXISTS user_tallies_clear();
DROP FUNCTION IF EXISTS user_tallies_track();
DROP INDEX IF EXISTS user_tallies_group_idx;
DROP TABLE IF EXISTS user_tallies;
