-- The outbox, leaner (the notifications issue's speed target): each delivery carries its
-- event's type and payload, and the `events` table goes. A change that raises an event
-- for one endpoint now writes one row into three B-trees (the deliveries, the due index,
-- the endpoint's log) instead of two rows into seven (the event, its id's index, its time
-- index; the delivery and its three indexes): the random `msg_…` ids were two of them,
-- each insert landing on a page of its own. An event sent to several endpoints stores
-- its payload once per endpoint, which is what each delivery sends anyway.
--
-- Pruning finds old deliveries by id (ids grow with time) instead of by an index on
-- their time, so that index is not paid for on every change either.

CREATE TABLE webhook_deliveries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP,
    claimed_until TIMESTAMP,
    last_attempt_at TIMESTAMP,
    last_status_code BIGINT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL
);

INSERT INTO webhook_deliveries_new (id, webhook_id, event_id, event_type, payload, status,
    attempts, next_attempt_at, claimed_until, last_attempt_at, last_status_code, last_error,
    created_at)
SELECT d.id, d.webhook_id, d.event_id, e.type, e.payload, d.status, d.attempts,
    d.next_attempt_at, d.claimed_until, d.last_attempt_at, d.last_status_code, d.last_error,
    d.created_at
FROM webhook_deliveries d JOIN events e ON e.id = d.event_id;

-- AUTOINCREMENT: a delivery's id is never handed out twice. The copy made the new
-- table's counter the highest id copied; the old counter may be higher.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'webhook_deliveries_new', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'webhook_deliveries_new');
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'webhook_deliveries'), 0))
WHERE name = 'webhook_deliveries_new';

DROP TABLE webhook_deliveries;
DROP TABLE events;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;

-- The claim: pending deliveries, oldest due first (also the backlog's count and age).
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
-- An endpoint's deliveries log, newest first.
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
