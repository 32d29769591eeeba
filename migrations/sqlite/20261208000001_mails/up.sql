-- Mail (the notifications issue): what Gatehouse sends over SMTP, queued in the
-- transaction of the change that causes it (the transactional outbox, as the webhook
-- deliveries are), so a rolled-back change mails no one; dispatchers claim due mails,
-- send them and record each attempt. AUTOINCREMENT: an id is never handed out
-- twice.
--
-- One mail: pending (due at next_attempt_at, claimed by a dispatcher until
-- claimed_until), sent (at sent_at) or failed. `kind` is `MailKind::as_str`;
-- last_status_code is the last SMTP reply's code, if one came.
CREATE TABLE mails (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP,
    claimed_until TIMESTAMP,
    last_attempt_at TIMESTAMP,
    last_status_code BIGINT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
-- The claim: pending mails, oldest due first (also the backlog's count).
CREATE INDEX mails_due_idx ON mails (next_attempt_at, id) WHERE status = 'pending';
