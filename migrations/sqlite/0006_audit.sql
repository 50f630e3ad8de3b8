-- The audit trail (notary-server/src/audit.rs): one row per write — publish, deletion (API or
-- admin), key creation and rotation, import — with who made it. Written in the same statement
-- as the write it records; read by `notary-server audit`; kept by `prune` unless asked.
CREATE TABLE IF NOT EXISTS notary_rs_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    action VARCHAR(32) NOT NULL,
    gun VARCHAR(255) NOT NULL,
    roles TEXT NOT NULL DEFAULT '',
    subject TEXT,
    client TEXT,
    request_id TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS notary_rs_audit_gun_at ON notary_rs_audit (gun, at);
CREATE INDEX IF NOT EXISTS notary_rs_audit_at ON notary_rs_audit (at);
