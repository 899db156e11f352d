-- Ward control-plane schema, version 2: policy bundles.
--
-- A pushed bundle is immutable: its version is the SHA-256 of its files
-- (ward_policy::PolicyVersion), its files are stored as JSON text, and the
-- server's signature over the version lets proxies refuse a bundle that did
-- not come from the server. Exactly one version is active at a time.

CREATE TABLE policy_versions (
    version TEXT PRIMARY KEY,
    files TEXT NOT NULL,
    signature TEXT NOT NULL,
    pushed_by TEXT NOT NULL,
    pushed_at BIGINT NOT NULL
);

CREATE TABLE policy_active (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL REFERENCES policy_versions (version),
    activated_at BIGINT NOT NULL,
    revision BIGINT NOT NULL
);
