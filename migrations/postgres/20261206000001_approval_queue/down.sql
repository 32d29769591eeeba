-- Rejected users go back to pending: the older schema has no rejection.
UPDATE users SET status = 'pending' WHERE status = 'rejected';
DROP INDEX users_rejected_by_idx;
ALTER TABLE users
    DROP COLUMN reason,
    DROP COLUMN email_verified,
    DROP COLUMN mfa_enabled,
    DROP COLUMN rejected_at,
    DROP COLUMN rejected_by,
    DROP COLUMN decision_note;
ALTER TABLE users DROP CONSTRAINT users_status_check;
ALTER TABLE users ADD CONSTRAINT users_status_check
    CHECK (status IN ('pending', 'approved', 'disabled'));
ALTER TABLE invitations RESET (fillfactor);
