DROP INDEX tag_changes_applied_idx;
DROP INDEX visits_stats_idx;
DROP INDEX tasks_due_stats_idx;
DROP INDEX tasks_open_stats_idx;
DROP INDEX households_stats_idx;
