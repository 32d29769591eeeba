DROP TABLE signing_keys;
DROP TABLE audit_log;
DROP TABLE throttle_counters;
DROP TABLE revoked_tokens;
