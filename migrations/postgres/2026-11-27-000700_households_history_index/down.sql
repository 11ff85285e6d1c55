DROP INDEX households_history_idx;
