-- The extension stays: other objects may use it, and it costs nothing unused.
DROP INDEX IF EXISTS users_email_trgm_idx;
