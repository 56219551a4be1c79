-- handoff cloud, schema 5: no share-link secret is kept anywhere. A
-- relayed NewShareLink's answer keeps its link number; the secret is
-- derived again from the cloud CA's key and the event's id when a
-- duplicate asks (src/cloud/store/link_key.rs). Places keep the SHA-256
-- of the secret (link_secret_sha256, schema 1).
ALTER TABLE events DROP COLUMN link_secret;
