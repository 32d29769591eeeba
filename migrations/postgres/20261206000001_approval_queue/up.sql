-- The approval queue (the approval issue): a user may be `rejected`, with who did it and
-- when, and the note of the admin's last decision; an applicant's reason; whether the email
-- is verified (email-bound invitations, admins' creations) and whether MFA is on (the MFA
-- issue; false until then). Adding nullable columns and columns with a constant default
-- rewrites no rows.
ALTER TABLE users DROP CONSTRAINT users_status_check;
ALTER TABLE users ADD CONSTRAINT users_status_check
    CHECK (status IN ('pending', 'approved', 'disabled', 'rejected'));

ALTER TABLE users
    ADD COLUMN reason TEXT,
    ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN rejected_at TIMESTAMP,
    ADD COLUMN rejected_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN decision_note TEXT;

-- Deleting an admin sets their rejections' rejected_by to NULL: found through the index.
CREATE INDEX users_rejected_by_idx ON users (rejected_by);

-- A registration with an invitation updates its row (`uses`). With room left on each page
-- the update is HOT: no new index entry, so concurrent registrations on other invitations
-- do not meet on the code index's pages, where SERIALIZABLE's predicate locks would make
-- them retry. (Measured in docs/performance.md, "Issue 16".)
ALTER TABLE invitations SET (fillfactor = 70);
