-- 0002: replication state — cursors per peer and the quarantine.

-- kind:
--   'push_in'  (at a parent) highest seq of the child `peer` held durably here;
--   'pull_in'  (at a child)  highest seq of the parent `peer` held here;
--   'push_out' (at a child)  highest own seq the parent `peer` acked.
CREATE TABLE cursors (
    peer          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('push_in', 'pull_in', 'push_out')),
    seq           INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (peer, kind)
) STRICT, WITHOUT ROWID;

-- Records refused by validation or authorization: stored with the reason,
-- never blocking the records behind them, replayable by an operator.
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    received_from  TEXT NOT NULL,
    event_id       TEXT,
    payload        BLOB NOT NULL,
    reason         TEXT NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    replayed_at_ms INTEGER
) STRICT;

CREATE INDEX quarantine_open ON quarantine (received_from) WHERE replayed_at_ms IS NULL;

-- What this site knows of each link: at a child, its parent; at a parent,
-- each child. Written by the replication code, read by `status`/`nodes`.
CREATE TABLE peers (
    peer           TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    last_seen_ms   INTEGER,
    last_error     TEXT,
    last_error_ms  INTEGER,
    -- peer wall clock minus ours, measured at Hello (positive: peer ahead).
    clock_skew_ms  INTEGER,
    -- the peer's own head seq as it reported it at Hello.
    peer_head_seq  INTEGER,
    -- events received from this peer: stored, and already held (re-sent).
    received_events     INTEGER NOT NULL DEFAULT 0,
    received_duplicates INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
