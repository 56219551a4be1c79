-- handoff cloud, schema 3: when each enrolled daemon was last connected,
-- for `handoff cloud daemon list` (revoked_at is schema 1's).
ALTER TABLE daemons ADD COLUMN last_contact bigint;
