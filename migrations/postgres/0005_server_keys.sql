-- Which repository and role each server-managed key (timestamp, snapshot) belongs to: a key is
-- used only for the GUN and role it was created for (notary-server/src/service.rs, "key
-- binding"). Filled when the server creates a key and, once, from the roots already stored.
CREATE TABLE IF NOT EXISTS notary_rs_server_keys (
    key_id VARCHAR(255) PRIMARY KEY,
    gun VARCHAR(255) NOT NULL,
    role VARCHAR(255) NOT NULL
);
