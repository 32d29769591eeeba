DROP TRIGGER users_email_search_update;
DROP TRIGGER users_email_search_delete;
DROP TRIGGER users_email_search_insert;
DROP TABLE users_email_search;
