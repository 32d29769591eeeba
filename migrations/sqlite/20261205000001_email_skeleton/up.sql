-- Look-alike emails: each user's email skeleton (Unicode UTS #39, `Email::skeleton`),
-- written by Gatehouse with every insert and email change, and looked up through the index
-- before a new email is accepted (`find_by_email_skeleton`). Not unique: accounts from
-- before the rule may share a skeleton, and are left as they are.
--
-- SQL cannot compute a skeleton: existing rows keep NULL here, and the binary fills them in
-- right after migrating (storage's `backfill.rs`), NFKC-normalising their emails on the way.
ALTER TABLE users ADD COLUMN email_skeleton TEXT;

CREATE INDEX users_email_skeleton_idx ON users (email_skeleton);
