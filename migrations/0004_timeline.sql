-- handoff cloud, schema 4: every event a Place's rules applied or refused,
-- for the portal's timeline. `site_box` names the daemon that relayed the
-- event (NULL: the operator CLI or the portal); `rule` is NULL when the
-- event was applied. Times are seconds since the Unix epoch. No foreign
-- key: a deleted Place keeps its history.

CREATE TABLE place_events (
    id       bigserial PRIMARY KEY,
    place    text NOT NULL,
    at       bigint NOT NULL,
    account  text NOT NULL,
    site_box text,
    what     text NOT NULL,
    rule     text,
    why      text
);

CREATE INDEX place_events_place ON place_events (place, id);
