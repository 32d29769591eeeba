-- Back to an `events` table beside the deliveries (one event per id, from its first
-- delivery).
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO events (id, type, payload, created_at)
SELECT DISTINCT ON (event_id) event_id, event_type, payload, created_at
FROM webhook_deliveries ORDER BY event_id, id;
CREATE INDEX events_created_idx ON events (created_at);
ALTER TABLE webhook_deliveries
    DROP COLUMN event_type,
    DROP COLUMN payload,
    ADD CONSTRAINT webhook_deliveries_event_id_fkey
        FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
