DROP TRIGGER IF EXISTS user_tallies_update;
DROP TRIGGER IF EXISTS user_tallies_delete;
DROP TRIGGER IF EXISTS user_tallies_insert;
DROP INDEX IF EXISTS user_tallies_group_idx;
DROP TABLE IF EXISTS user_tallies;
