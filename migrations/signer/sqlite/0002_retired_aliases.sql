-- Passphrase aliases that `notary-signer reencrypt` moved every key away from: a signer still
-- configured with one as its default alias creates no key under it (notary-signer/src/sql.rs).
CREATE TABLE IF NOT EXISTS notary_rs_retired_aliases (
    alias VARCHAR(50) PRIMARY KEY,
    replaced_by VARCHAR(50) NOT NULL,
    retired_at TIMESTAMP NOT NULL
);
