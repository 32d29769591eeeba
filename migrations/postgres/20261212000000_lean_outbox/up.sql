-- The outbox, leaner (the notifications issue's speed target): each delivery carries its
-- event's type and payload, and the `events` table goes. A change that raises an event
-- for one endpoint now writes one row (the delivery, its key, the due index, the
-- endpoint's log) instead of two (the event, its id's index, its time index; the delivery
-- and its four indexes): the random `msg_…` ids were two of them, each insert landing on
-- a page of its own. An event sent to several endpoints stores its payload once per
-- endpoint, which is what each delivery sends anyway.
--
-- Pruning finds old deliveries by id (ids grow with time) instead of by an index on
-- their time, so that index is not paid for on every change either.

ALTER TABLE webhook_deliveries ADD COLUMN event_type TEXT, ADD COLUMN payload TEXT;
UPDATE webhook_deliveries d SET event_type = e.type, payload = e.payload
FROM events e WHERE e.id = d.event_id;
ALTER TABLE webhook_deliveries
    ALTER COLUMN event_type SET NOT NULL,
    ALTER COLUMN payload SET NOT NULL,
    DROP CONSTRAINT webhook_deliveries_event_id_fkey;
DROP INDEX webhook_deliveries_event_idx;
DROP TABLE events;
