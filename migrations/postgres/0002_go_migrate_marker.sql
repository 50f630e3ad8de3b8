-- Record, in golang-migrate's table, that the Go server's migrations 1 and 2 are in place, so
-- an operator who rolls back to the Go notary-server and runs its migrate step finds the
-- schema up to date. A database the Go tooling created keeps its own record.
CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO schema_migrations (version, dirty) SELECT 2, false WHERE NOT EXISTS (SELECT 1 FROM schema_migrations);
