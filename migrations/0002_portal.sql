-- handoff cloud, schema 2: what the Places portal keeps. A sign-in link and
-- a session are stored as the SHA-256 of their secret (hex): reading the
-- database signs no one in. Times are seconds since the Unix epoch.

CREATE TABLE sign_in_links (
    secret_sha256 text PRIMARY KEY,
    account       text NOT NULL,
    expires       bigint NOT NULL,
    used_at       bigint          -- NULL: not used yet; a link signs in once
);

CREATE TABLE sessions (
    secret_sha256 text PRIMARY KEY,
    account       text NOT NULL,
    expires       bigint NOT NULL,
    csrf          text NOT NULL   -- the token every form of this session carries
);

CREATE INDEX sign_in_links_expires ON sign_in_links (expires);
CREATE INDEX sessions_expires ON sessions (expires);
