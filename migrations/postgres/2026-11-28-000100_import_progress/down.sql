ALTER TABLE imports DROP COLUMN errors_file;
ALTER TABLE imports DROP COLUMN missing_basis;
ALTER TABLE imports DROP COLUMN failure;
ALTER TABLE imports DROP COLUMN progress_total;
ALTER TABLE imports DROP COLUMN progress_done;
