DROP INDEX audit_log_at_idx;
DROP TABLE device_tokens;
