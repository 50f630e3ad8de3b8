-- Nothing on SQLite: one file has one server, which needs no write announcements.
SELECT 1;
