-- Ward control-plane schema, version 3: the audit log's query index and
-- ingestion marks.
--
-- The index is derived from the Merkle log (crates/ward-server/src/audit/
-- index.rs rebuilds it from the log's entries), so it may lag the log but
-- never disagree with it. Entries themselves stay in the log's tiles.

CREATE TABLE audit_index (
    idx BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    decision_id TEXT NOT NULL,
    proxy_id TEXT NOT NULL,
    principal TEXT,
    principal_agent TEXT,
    resource TEXT NOT NULL,
    resource_agent TEXT,
    action TEXT NOT NULL,
    decision TEXT NOT NULL,
    policy_version TEXT NOT NULL
);
CREATE INDEX audit_index_time ON audit_index (time_ms);
CREATE INDEX audit_index_principal ON audit_index (principal_agent, idx);
CREATE INDEX audit_index_resource ON audit_index (resource_agent, idx);
CREATE INDEX audit_index_decision ON audit_index (decision, idx);
CREATE INDEX audit_index_decision_id ON audit_index (decision_id);

-- One row per (determining policy, entry).
CREATE TABLE audit_index_policies (
    policy TEXT NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (policy, idx)
);

-- Per shipping proxy: the highest spool sequence number whose record is in
-- the log, so a batch re-sent after a lost acknowledgement is not logged
-- twice.
CREATE TABLE audit_ingest (
    proxy TEXT PRIMARY KEY,
    through_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
