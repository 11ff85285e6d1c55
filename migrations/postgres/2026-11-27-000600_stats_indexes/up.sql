-- Dashboards and evaluation reports (src/store/stats.rs) aggregate per grid. These indexes
-- hold every column those queries read (the columns of the partial-index conditions too, so
-- that SQLite treats them as covering): the figures are read from indexes, not from tables.

-- households by grid and tag, reviews due; the households side of home-visit coverage
CREATE INDEX households_stats_idx ON households (community_id, grid_id, tag, tag_review_due_on, id, removed_at) WHERE removed_at IS NULL;
-- open and overdue tasks by grid and tag
CREATE INDEX tasks_open_stats_idx ON tasks (community_id, grid_id, tag, due_on, status) WHERE status = 'open';
-- tasks due in a period, with what decides their outcome
CREATE INDEX tasks_due_stats_idx ON tasks (community_id, due_on, grid_id, assignee_id, status, completed_at);
-- visits in a time window by grid, worker and kind
CREATE INDEX visits_stats_idx ON visits (community_id, visited_at, grid_id, worker_id, kind);
-- a household's tag at a past moment: the first approved change after it
CREATE INDEX tag_changes_applied_idx ON tag_changes (household_id, decided_at, from_tag, status) WHERE status = 'approved';
