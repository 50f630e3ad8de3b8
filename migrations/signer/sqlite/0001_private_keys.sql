-- notary-signer key store (same columns as the Go signer's private_keys table).
CREATE TABLE IF NOT EXISTS private_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at DATETIME NULL,
    updated_at DATETIME NULL,
    deleted_at DATETIME NULL,
    key_id VARCHAR(255) NOT NULL UNIQUE,
    encryption_alg VARCHAR(255) NOT NULL,
    keywrap_alg VARCHAR(255) NOT NULL,
    algorithm VARCHAR(50) NOT NULL,
    passphrase_alias VARCHAR(50) NOT NULL,
    public BLOB NOT NULL,
    private BLOB NOT NULL,
    gun VARCHAR(255) NOT NULL,
    role VARCHAR(255) NOT NULL,
    last_used DATETIME NULL DEFAULT NULL,
    UNIQUE (key_id, algorithm)
);
CREATE INDEX IF NOT EXISTS private_keys_pending_idx ON private_keys (gun, role, algorithm);
