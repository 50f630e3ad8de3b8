-- Repositories brought here by `notary-server import`: where from and when. The server reads it
-- to tell operators which imported repositories still await a rotation of the timestamp (and
-- snapshot) keys it does not hold (notary-tools/src/import/mod.rs).
CREATE TABLE IF NOT EXISTS notary_rs_imports (
    gun VARCHAR(255) PRIMARY KEY,
    source TEXT NOT NULL,
    imported_at TIMESTAMP NOT NULL,
    files INTEGER NOT NULL
);
