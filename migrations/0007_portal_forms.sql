-- handoff cloud, schema 7: the portal's POST/redirect/GET.
-- `sessions.flash` is the one-shot message of the session's last POST,
-- shown by the next page it opens and then cleared (JSON the portal
-- writes; it may hold a new share link's address until that page is
-- shown). `used_forms` keeps the nonce of every form a session has sent,
-- so that a form sent again (a refresh, the back button) acts once; rows
-- go with their session's expiry. The index serves the Places list, which
-- reads only the signed-in account's grants.

ALTER TABLE sessions ADD COLUMN flash text;

CREATE TABLE used_forms (
    session_sha256 text NOT NULL,
    nonce          text NOT NULL,
    expires        bigint NOT NULL,
    PRIMARY KEY (session_sha256, nonce)
);
CREATE INDEX used_forms_expires ON used_forms (expires);

CREATE INDEX grants_account ON grants (account, place);
