-- Listing users by status, newest first, a page at a time: one index walk from the
-- newest matching id, never a sort of every match (GET /api/auth/users?status=...).
CREATE INDEX users_status_id_idx ON users (status, id);
DROP INDEX users_status_idx;
