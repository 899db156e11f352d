-- Ward control-plane schema, version 6: receipts. Each proxy reports the
-- control-plane revision it has applied (on every change, and every few
-- seconds as a heartbeat), so `ward agent revoke --wait` can tell when every
-- connected proxy enforces a revocation, and `ward proxy list` shows lag.
-- Times are unix milliseconds.
CREATE TABLE proxy_receipts (
    spiffe_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    revision BIGINT NOT NULL,
    applied_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
