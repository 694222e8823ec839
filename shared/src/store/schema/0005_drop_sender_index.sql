-- 0005: one index fewer on every received event.
--
-- `events_by_sender` (0003) kept an entry per received event so that the
-- receipt scan could group a range of the log by sender. That scan reads
-- only the seqs a parent newly acked, a range of the primary key, so the
-- index bought nothing there and cost an extra B-tree insert on the hot
-- path of every hub (docs/benchmarks.md).
DROP INDEX IF EXISTS events_by_sender;
