-- handoff cloud, schema 1: the Place service's store, normalized so that
-- an event reads and writes only the rows it is about (a Place's grants
-- are rows, not one record rewritten whole).
-- Times are seconds since the Unix epoch (the rules' Timestamp).

CREATE TABLE places (
    id              text PRIMARY KEY,
    remote_services boolean NOT NULL,
    project_key     text NOT NULL,
    links_issued    bigint NOT NULL,
    -- The one active share link: its number, who made it, its duration,
    -- and the SHA-256 of its secret (hex). The secret itself is never kept.
    link_number     bigint,
    link_by         text,
    link_duration   text,
    link_secret_sha256 text
);

-- Ids of deleted Places: never reused, or old links would match.
CREATE TABLE deleted_places (
    id         text PRIMARY KEY,
    deleted_at bigint NOT NULL
);

CREATE TABLE grants (
    place     text NOT NULL REFERENCES places (id) ON DELETE CASCADE,
    account   text NOT NULL,
    role      text NOT NULL,   -- 'homeowner' | 'pro-installer'
    expires   bigint,          -- NULL: unlimited
    source    text NOT NULL,   -- 'creator' | 'project-file' | 'claim' | 'share' | 'link'
    source_by text,            -- the sharer or the link's creator
    PRIMARY KEY (place, account)
);
-- The homeowner of a Place is read by every event on it.
CREATE INDEX grants_homeowner ON grants (place) WHERE role = 'homeowner';

-- Processors activated in a Place (the rules' Place.processors).
CREATE TABLE place_processors (
    place  text NOT NULL REFERENCES places (id) ON DELETE CASCADE,
    serial bigint NOT NULL,
    PRIMARY KEY (place, serial)
);

-- What the cloud knows of a processor: its Place, MAC and CA. Kept when
-- its Place is deleted, as a claim proof is checked against it.
CREATE TABLE processors (
    serial bigint PRIMARY KEY,
    place  text NOT NULL,
    mac    bytea NOT NULL,
    ca_der bytea NOT NULL
);
CREATE INDEX processors_mac ON processors (mac);

CREATE TABLE spent_proofs (
    serial    bigint NOT NULL,
    proof_key bytea NOT NULL,
    spent_at  bigint NOT NULL,
    PRIMARY KEY (serial, proof_key)
);

CREATE TABLE daemons (
    name        text PRIMARY KEY,
    account     text NOT NULL,
    enrolled_at bigint NOT NULL,
    revoked_at  bigint
);

-- Every relayed event ever applied or refused, with the answer a
-- duplicate gets back. A NewShareLink's answer carries its link, secret
-- included: a daemon that lost the first answer must still learn it.
CREATE TABLE events (
    account     text NOT NULL,
    daemon      text NOT NULL,
    seq         bigint NOT NULL,
    outcome     text NOT NULL,  -- 'applied' | 'refused'
    rule        text,
    why         text,
    link_number bigint,
    link_secret text,
    applied_at  bigint NOT NULL,
    PRIMARY KEY (account, daemon, seq)
);
