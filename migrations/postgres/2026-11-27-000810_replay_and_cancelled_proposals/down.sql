UPDATE tag_changes SET status = 'rejected' WHERE status = 'cancelled';
ALTER TABLE tag_changes DROP CONSTRAINT tag_changes_status_check;
ALTER TABLE tag_changes ADD CONSTRAINT tag_changes_status_check CHECK (status IN ('pending', 'approved', 'rejected'));
ALTER TABLE members DROP COLUMN create_digest;
ALTER TABLE members DROP COLUMN created_by;
ALTER TABLE households DROP COLUMN create_digest;
ALTER TABLE households DROP COLUMN created_by;
