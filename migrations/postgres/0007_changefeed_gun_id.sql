-- One repository's changefeed in ID order (`GET /v2/<gun>/_trust/changefeed`) read from an index
-- in that order: Go's index on `gun` alone made Postgres fetch and sort every change of the
-- repository first, a cost that grew with its history (docs/performance.md, "Long histories").
CREATE INDEX IF NOT EXISTS notary_rs_changefeed_gun_id ON changefeed (gun, id);
