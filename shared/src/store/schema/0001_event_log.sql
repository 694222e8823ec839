-- 0001: the event log, the complaint index derived from it, and writer state.

-- One row per fact about this site (its code, the tracking-number instance tag).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- The append-only log. `seq` is this site's local order and the unit of
-- cursors between sites; AUTOINCREMENT so a seq is never reused.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      BLOB NOT NULL UNIQUE,
    complaint_id  BLOB NOT NULL,
    origin        TEXT NOT NULL,
    district      TEXT NOT NULL,
    hlc           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    -- Canonical protobuf encoding of the whole lapor.sync.v1.Event; two
    -- copies of one event are equal iff these bytes are equal.
    payload       BLOB NOT NULL,
    -- NULL when written at this site; otherwise the peer it arrived from
    -- (so it is never echoed back to that peer).
    received_from TEXT,
    stored_at_ms  INTEGER NOT NULL
) STRICT;

CREATE INDEX events_by_complaint ON events (complaint_id);
CREATE INDEX events_by_district ON events (district, seq);

-- Derived from the events (rebuildable): what lists and filters need.
CREATE TABLE complaints (
    complaint_id    BLOB PRIMARY KEY,
    tracking_number TEXT NOT NULL UNIQUE,
    district        TEXT NOT NULL,
    status          INTEGER NOT NULL,
    created_hlc     INTEGER NOT NULL,
    updated_hlc     INTEGER NOT NULL,
    updated_seq     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX complaints_by_district ON complaints (district, complaint_id);

-- Same event id arrived with different content: refused, kept for an operator.
CREATE TABLE conflicts (
    id            INTEGER PRIMARY KEY,
    event_id      BLOB NOT NULL,
    received_from TEXT,
    payload       BLOB NOT NULL,
    recorded_at_ms INTEGER NOT NULL
) STRICT;

-- Writer state persisted once per group commit.
CREATE TABLE writer_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    hlc            INTEGER NOT NULL,
    tracking_next  INTEGER NOT NULL
) STRICT;
INSERT INTO writer_state (id, hlc, tracking_next) VALUES (1, 0, 1);
