UPDATE tag_changes SET status = 'rejected' WHERE status = 'cancelled';
CREATE TABLE tag_changes_old (
    id TEXT PRIMARY KEY NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    grid_id TEXT NOT NULL REFERENCES grids (id),
    from_tag TEXT NOT NULL CHECK (from_tag IN ('red', 'yellow', 'green')),
    to_tag TEXT NOT NULL CHECK (to_tag IN ('red', 'yellow', 'green')),
    reasons TEXT NOT NULL DEFAULT '[]',
    note TEXT,
    proposed_by TEXT NOT NULL REFERENCES users (id),
    proposed_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    decision_note TEXT
);
INSERT INTO tag_changes_old SELECT * FROM tag_changes;
DROP TABLE tag_changes;
ALTER TABLE tag_changes_old RENAME TO tag_changes;
CREATE UNIQUE INDEX tag_changes_one_pending ON tag_changes (household_id) WHERE status = 'pending';
CREATE INDEX tag_changes_household_idx ON tag_changes (household_id, decided_at);
CREATE INDEX tag_changes_community_idx ON tag_changes (community_id, status, proposed_at);
CREATE INDEX tag_changes_grid_idx ON tag_changes (grid_id, status, proposed_at);
CREATE INDEX tag_changes_applied_idx ON tag_changes (household_id, decided_at, from_tag, status) WHERE status = 'approved';
ALTER TABLE members DROP COLUMN create_digest;
ALTER TABLE members DROP COLUMN created_by;
ALTER TABLE households DROP COLUMN create_digest;
ALTER TABLE households DROP COLUMN created_by;
