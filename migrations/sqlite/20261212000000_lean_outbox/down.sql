-- Back to an `events` table beside the deliveries (one event per id, from its first
-- delivery).
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO events (id, type, payload, created_at)
SELECT event_id, event_type, payload, created_at FROM webhook_deliveries d
WHERE d.id = (SELECT MIN(f.id) FROM webhook_deliveries f WHERE f.event_id = d.event_id);
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE webhook_deliveries_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP,
    claimed_until TIMESTAMP,
    last_attempt_at TIMESTAMP,
    last_status_code BIGINT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO webhook_deliveries_old (id, webhook_id, event_id, status, attempts,
    next_attempt_at, claimed_until, last_attempt_at, last_status_code, last_error, created_at)
SELECT id, webhook_id, event_id, status, attempts, next_attempt_at, claimed_until,
    last_attempt_at, last_status_code, last_error, created_at
FROM webhook_deliveries;
INSERT INTO sqlite_sequence (name, seq)
SELECT 'webhook_deliveries_old', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'webhook_deliveries_old');
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'webhook_deliveries'), 0))
WHERE name = 'webhook_deliveries_old';
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_old RENAME TO webhook_deliveries;

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
