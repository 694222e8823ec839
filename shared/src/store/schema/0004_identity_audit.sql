-- 0004: reporter identity sealed at rest, and the hash-chained audit log.
-- (The format of sealed blobs and the rules are in store/identity.rs.)

-- Reporter identity of a Created event, sealed with the site key. The
-- event's payload in `events` never holds it; it is re-attached when the
-- event is sent to a peer (scope 'event') or never (scope 'local': an
-- anonymous complaint's identity, kept at its own node only).
CREATE TABLE identities (
    event_id       BLOB PRIMARY KEY,
    complaint_id   BLOB NOT NULL,
    scope          TEXT NOT NULL CHECK (scope IN ('event', 'local')),
    sealed         BLOB NOT NULL,
    -- HMAC-SHA256 of the NIK under a key derived from the site key; NULL
    -- when the reporter gave no NIK. Never the NIK itself.
    nik_hash       BLOB,
    recorded_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX identities_by_complaint ON identities (complaint_id);
CREATE INDEX identities_by_nik ON identities (nik_hash) WHERE nik_hash IS NOT NULL;

-- Conflict and quarantine copies keep a whole event, identity included, so
-- they are sealed whole. 0 marks rows written before this version: the
-- store seals them the first time it opens the database with a key.
ALTER TABLE conflicts ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE quarantine ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;

-- Every read of reporter identity and every refused write, append-only.
-- hash = SHA-256(prev_hash || canonical row); the first row's prev_hash is
-- 32 zero bytes. `lapor-node audit verify` / `lapor-hub audit verify` walk it.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;

-- Append-only against mistakes; tampering by someone who can drop these
-- triggers is what the hash chain detects.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit rows are append-only');
END;
