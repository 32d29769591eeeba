-- Webhooks (the notifications issue): endpoints, the events raised by changes, and one
-- delivery per event and endpoint. An event and its deliveries are written in the
-- transaction of the change that raised it (the transactional outbox), so a rolled-back
-- change notifies no one; dispatchers claim due deliveries, send them and record each
-- attempt.

-- Endpoints. `events` is the subscription as `EventFilter::to_stored` writes it: `*`
-- for every event, or the names between commas (`,user.approved,user.rejected,`), so that
-- a matching endpoint is found with `LIKE '%,name,%'`. The secret signs the deliveries.
CREATE TABLE webhooks (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Events by their message id (`msg_` and 32 hex digits, every delivery's
-- `webhook-id`), with the JSON body every endpoint is sent.
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
-- Pruning by age.
CREATE INDEX events_created_idx ON events (created_at);

-- One event's delivery to one endpoint: pending (due at next_attempt_at, claimed by a
-- dispatcher until claimed_until), delivered or failed; gone with its endpoint or event.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
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
-- The claim: pending deliveries, oldest due first (also the backlog's count and age).
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
-- An endpoint's deliveries log, newest first.
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- An event's deliveries: the cascade when it is pruned, and pruning's check for pending ones.
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
