-- Ward control-plane schema, version 4: the audit log's storage.
--
-- The Merkle log (ward_audit::Log) keeps its tlog-tiles resources here when
-- the server runs on a database, keyed by their tlog-tiles path
-- (`checkpoint`, `tile/0/000`, `tile/entries/000.p/5`, and the private
-- `ward-tree-state`). Bytes are base64 TEXT, like every binary value in this
-- schema: one file serves both backends, whose binary types differ.
CREATE TABLE audit_tiles (
    path TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

-- The sequencer lease: at most one row. Whoever holds it appends to the log;
-- every tile write re-checks `epoch` in its own transaction, so a replica
-- whose lease was taken over can no longer write. `expires_at` is unix
-- milliseconds by the clock of the replica that last acquired or renewed;
-- `epoch` only grows. The row exists from the start, unheld and expired at
-- epoch 0, so acquiring is a single conditional UPDATE (the first holder
-- gets epoch 1) and no two replicas race to create it.
CREATE TABLE audit_sequencer (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO audit_sequencer (id, epoch, holder, expires_at) VALUES (1, 0, '', 0);
