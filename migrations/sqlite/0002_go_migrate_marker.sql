-- Nothing to record for SQLite (the Go server has no SQLite migrations).
SELECT 1;
