-- 0003: custody receipts — knowing how far up the chain an event is durable.

-- At a parent: the sender's own seq of each event it pushed (NULL for
-- events written here or pulled from above), so receipts can be stated in
-- the child's own numbering.
ALTER TABLE events ADD COLUMN source_seq INTEGER;
CREATE INDEX events_by_sender ON events (received_from, seq) WHERE received_from IS NOT NULL;

-- At a child: "my events through `through_seq` were durable at `tier` by
-- `at_ms`". One row per advance; a complaint's arrival time at a tier is the
-- earliest row covering its seq.
CREATE TABLE custody (
    tier        TEXT NOT NULL CHECK (tier IN ('province', 'national')),
    through_seq INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (tier, through_seq)
) STRICT, WITHOUT ROWID;

-- At a province hub: for each child, how far the child's events are durable
-- at national (derived from national's acks), to pass down as receipts.
CREATE TABLE receipts_out (
    child       TEXT PRIMARY KEY,
    through_seq INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- At a province hub: own seq through which national's acks were turned
-- into receipts (so a restart resumes the scan instead of redoing it).
CREATE TABLE receipt_scan (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
) STRICT;
INSERT INTO receipt_scan (id, through) VALUES (1, 0);
