-- Ward control-plane schema, version 7: CA authorities and their rotation.
-- Each row is one issuing authority (an intermediate and the root above
-- it); certificates only, the keys stay in the data directory (0600).
-- `staged` authorities are trusted but do not issue yet, `active` issues,
-- `retiring` is still trusted until its certificates expire, `retired` is
-- gone from the trust bundle. Every transition is a revision in the change
-- log (kind `bundle`), so proxies learn the new bundle from the watch stream.
CREATE TABLE ca_authorities (
    id TEXT PRIMARY KEY,
    root_pem TEXT NOT NULL,
    intermediate_pem TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('staged', 'active', 'retiring', 'retired')),
    new_root BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at BIGINT,
    revision BIGINT NOT NULL,
    -- The revision that created it: orders authorities oldest first
    -- (timestamps tie within a second).
    generation BIGINT NOT NULL
);

-- Which authority signed each certificate, so retiring one can tell how
-- many of its certificates are still valid.
ALTER TABLE certificates ADD COLUMN authority TEXT;
CREATE INDEX certificates_by_authority ON certificates (authority, not_after);
