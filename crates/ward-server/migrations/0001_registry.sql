-- Ward control-plane schema, version 1.
--
-- One file for both backends: only types and statements that SQLite and
-- PostgreSQL read the same way (TEXT, BIGINT, CHECK, UNIQUE, no
-- autoincrement, no BLOB/BYTEA). Times are unix seconds; JSON is TEXT.

-- The monotonic revision every change bumps, in the writing transaction.
CREATE TABLE revisions (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO revisions (id, revision) VALUES (1, 0);

CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'quarantined', 'revoked', 'retired')),
    endpoint TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revision BIGINT NOT NULL
);

-- Join tokens are stored as SHA-256 of the secret, never the secret.
CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    agent_name TEXT NOT NULL REFERENCES agents (name),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    agent_name TEXT,
    issued_at BIGINT NOT NULL,
    not_after BIGINT NOT NULL
);
CREATE INDEX certificates_by_spiffe_id ON certificates (spiffe_id);

-- A revocation names an agent (all its certificates) or one serial.
CREATE TABLE revocations (
    kind TEXT NOT NULL CHECK (kind IN ('agent', 'serial')),
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE TABLE admins (
    spiffe_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The change log behind the watch stream: one row per revision, in commit
-- order (the revisions row lock serialises writers), so a watcher resumes
-- from any revision with `revision > $last`.
CREATE TABLE changes (
    revision BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL
);
