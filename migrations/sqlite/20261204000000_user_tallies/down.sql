DROP TRIGGER IF EXISTS user_tallies_update;
DROP TRIGGER IF EXISTS user_tallies_delete;
DROP TRIGGER IF EXISTS user_tallies_insert;
DROP TABLE IF EXISTS user_tallies;
