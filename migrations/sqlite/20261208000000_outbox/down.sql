DROP TABLE webhook_deliveries;
DROP TABLE events;
DROP TABLE webhooks;
