-- 0006: the NIK look-up index, partitioned by arrival.
--
-- `identities_by_nik` (0004) was keyed by the NIK hash alone. A keyed hash
-- is random, so every identity stored went to a random leaf of that index,
-- and a group commit of a few thousand received complaints rewrote nearly
-- every leaf page of it into the WAL: a cost per complaint that grows with
-- the index (docs/benchmarks.md, fifth pass). Keyed by (nik_part, nik_hash),
-- where nik_part is the event's seq at this site divided by 4096, a commit
-- touches the leaves of one or two partitions only; a look-up probes each
-- partition (`identity::complaints_by_nik`).
ALTER TABLE identities ADD COLUMN nik_part INTEGER NOT NULL DEFAULT 0;

UPDATE identities
   SET nik_part = coalesce((SELECT e.seq FROM events e WHERE e.event_id = identities.event_id), 0) >> 12
 WHERE nik_hash IS NOT NULL;

DROP INDEX IF EXISTS identities_by_nik;
CREATE INDEX identities_by_nik_part ON identities (nik_part, nik_hash) WHERE nik_hash IS NOT NULL;
