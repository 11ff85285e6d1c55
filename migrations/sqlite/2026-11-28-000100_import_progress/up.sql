-- Roster imports commit in batches: where a commit stands (households done of total), why one
-- failed, the digest of the households a removal of the missing ones would take, and the error
-- workbook kept once the uploaded file is cleared (the file is emptied when the import ends).
ALTER TABLE imports ADD COLUMN progress_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE imports ADD COLUMN progress_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE imports ADD COLUMN failure TEXT;
ALTER TABLE imports ADD COLUMN missing_basis TEXT NOT NULL DEFAULT '';
ALTER TABLE imports ADD COLUMN errors_file BLOB;
