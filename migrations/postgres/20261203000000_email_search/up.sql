-- Searching users by email substring (GET /api/auth/users?q=...): a trigram index serves
-- `email LIKE '%needle%' ESCAPE '\'` when the needle has three characters or more between
-- its wildcards; shorter needles, and needles most users match, are read off the table as
-- before (the planner chooses).
--
-- pg_trgm ships with PostgreSQL's contrib and is a trusted extension (PostgreSQL 13+): a
-- database owner may create it. Where it is not installed or not permitted, the migration
-- goes on without the index, with a NOTICE, and searches scan the users table. To add the
-- index later, as a role that may: CREATE EXTENSION pg_trgm; then
-- CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
DO $$
DECLARE
    trgm_schema name;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm unavailable (%): email search will scan the users table', SQLERRM;
    END;
    -- The operator class lives in whichever schema the extension was installed into.
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        BEGIN
            EXECUTE format(
                'CREATE INDEX users_email_trgm_idx ON users USING gin (email %I.gin_trgm_ops)',
                trgm_schema
            );
        EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
            -- Installed by someone else into a schema this role may not use.
            RAISE NOTICE 'pg_trgm unusable (%): email search will scan the users table', SQLERRM;
        END;
    END IF;
END
$$;
