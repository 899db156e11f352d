-- Ward control-plane schema, version 5: the audit ingestion queue for
-- replicas sharing one database (crates/ward-server/src/audit/shared.rs).
--
-- Any replica stores a validated batch here; the replica holding the
-- sequencer lease appends queued batches in arrival order, then marks them
-- done with where they landed; the accepting replica then answers the proxy
-- and deletes the row. `records` is the batch's canonical JSON records, one
-- per line. Unused on the embedded SQLite default (one process sequences).
CREATE TABLE audit_queue (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    proxy TEXT,
    first_seq BIGINT NOT NULL,
    records TEXT NOT NULL,
    state TEXT NOT NULL,
    first_index BIGINT,
    appended BIGINT,
    tree_size BIGINT
);
CREATE INDEX audit_queue_state ON audit_queue (state, created_at);
