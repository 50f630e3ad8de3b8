-- Static publication (`publication`): how far through the changefeed each published tree is
-- (`target` names the tree: a directory or a bucket and prefix). A tree without a row gets a
-- full re-sync first.
CREATE TABLE IF NOT EXISTS notary_rs_publication (
    target TEXT PRIMARY KEY,
    change_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
