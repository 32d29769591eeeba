-- Searching users by email substring (GET /api/auth/users?q=...): an FTS5 index of the
-- emails' trigrams. External content: the emails stay in `users` only, the index holds
-- trigrams and rowids (= users.id); the triggers keep it in step with every insert, email
-- change and delete. The repository asks it for candidates (`MATCH` of the needle as one
-- phrase, needles of three characters or more) and checks each with the same LIKE as before.
CREATE VIRTUAL TABLE users_email_search USING fts5(
    email,
    content = 'users',
    content_rowid = 'id',
    tokenize = 'trigram'
);

-- Existing users.
INSERT INTO users_email_search (users_email_search) VALUES ('rebuild');

CREATE TRIGGER users_email_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_email_search (rowid, email) VALUES (new.id, new.email);
END;

-- An external-content index forgets a row by being told its old values.
CREATE TRIGGER users_email_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
    VALUES ('delete', old.id, old.email);
END;

-- Updates that leave the email alone (most of them) leave the index alone.
CREATE TRIGGER users_email_search_update AFTER UPDATE OF id, email ON users
WHEN old.id IS NOT new.id OR old.email IS NOT new.email BEGIN
    INSERT INTO users_email_search (users_email_search, rowid, email)
    VALUES ('delete', old.id, old.email);
    INSERT INTO users_email_search (rowid, email) VALUES (new.id, new.email);
END;
