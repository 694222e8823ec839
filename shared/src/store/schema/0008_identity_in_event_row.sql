-- 0008: a reporter identity lives in its Created event's row.
--
-- `identities` (0004) was a table of its own keyed by event id, so every
-- named complaint a site stored cost a second B-tree insert (a ~300-byte
-- record placed by a 16-byte key), and every event run joined it back by
-- event id. The sealed identity is now three columns of the event row it
-- belongs to; an event that carries none holds NULLs (a byte of record
-- header each). The rules are unchanged (store/identity.rs): `payload` never
-- holds identity; `identity` is the sealed ReporterIdentity, bound by its
-- AAD to the event id, so a blob moved to another row does not open.
ALTER TABLE events ADD COLUMN identity BLOB;
ALTER TABLE events ADD COLUMN identity_scope TEXT CHECK (identity_scope IN ('event', 'local'));
-- HMAC-SHA256 of the NIK under a key derived from the site key; NULL when
-- the reporter gave no NIK or there is no identity. Never the NIK itself.
ALTER TABLE events ADD COLUMN nik_hash BLOB;

-- Every identity row has its event: both were written in one transaction,
-- and events are never deleted.
UPDATE events
   SET identity = i.sealed, identity_scope = i.scope, nik_hash = i.nik_hash
  FROM identities i
 WHERE i.event_id = events.event_id;

DROP TABLE identities;

-- The NIK look-up index stays partitioned by arrival (0006): the partition
-- is the row's seq divided by 4096, computed by SQLite from the seq it
-- assigns, so a group commit's hashes land in one or two partitions.
CREATE INDEX events_by_nik ON events ((seq >> 12), nik_hash) WHERE nik_hash IS NOT NULL;
