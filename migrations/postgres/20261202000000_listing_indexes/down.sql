CREATE INDEX users_status_idx ON users (status);
DROP INDEX users_status_id_idx;
