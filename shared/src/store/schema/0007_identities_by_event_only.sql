-- 0007: one index fewer on every stored identity.
--
-- `identities_by_complaint` (0004) served only the rule that makes an
-- identity local or erases it when its complaint turns anonymous, a rare
-- write. That rule now finds the complaint's identities through its events
-- (`events_by_complaint`, then the identities' primary key), and the index
-- no longer costs a B-tree insert for every named complaint a site stores
-- (docs/benchmarks.md, fifth pass).
DROP INDEX IF EXISTS identities_by_complaint;
