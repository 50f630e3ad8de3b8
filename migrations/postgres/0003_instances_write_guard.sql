-- Instances that serve current reads from their cache without a database round trip (see
-- notary-server/src/announce.rs): each holds a lease here, renewed while it hears every write
-- announcement. A write commits only if every instance holding a lease acknowledged its
-- announcement: `notary_rs_write_guard`, called from the write statement itself, takes a shared
-- lock (held until the write commits) that a registering instance waits out, then reads the
-- leases with a fresh snapshot (a VOLATILE function's queries see what committed before them).
CREATE TABLE IF NOT EXISTS notary_rs_instances (
    id TEXT PRIMARY KEY,
    lease_until TIMESTAMPTZ NOT NULL
);
CREATE OR REPLACE FUNCTION notary_rs_write_guard(acked TEXT[]) RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(121424972968563);
    RETURN NOT EXISTS (SELECT 1 FROM notary_rs_instances WHERE lease_until > clock_timestamp() AND NOT (id = ANY (acked)));
END
$$;
