-- Red coverage at the end of a past day (the evaluation reports, src/store/stats.rs) counts the
-- households that existed then, removed ones included, so the partial indexes on current
-- households cannot serve it; this one holds every household with the columns that query reads.
CREATE INDEX households_history_idx ON households (community_id, grid_id, tag, created_at, removed_at, id);
