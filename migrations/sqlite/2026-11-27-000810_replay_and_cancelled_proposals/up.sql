-- Creates with a client-chosen id are retried by the account that made them: who created the
-- row, and a digest of the request that created it, decide whether a retry is the same request
-- (200) or another (409) without comparing personal fields for anyone else.
ALTER TABLE households ADD COLUMN created_by TEXT;
ALTER TABLE households ADD COLUMN create_digest TEXT;
ALTER TABLE members ADD COLUMN created_by TEXT;
ALTER TABLE members ADD COLUMN create_digest TEXT;
UPDATE households SET created_by = (
    SELECT a.actor_id FROM audit_events a
    WHERE a.entity_type = 'household' AND a.entity_id = households.id AND a.action = 'household.created'
    ORDER BY a.at LIMIT 1);
UPDATE members SET created_by = (
    SELECT a.actor_id FROM audit_events a
    WHERE a.entity_type = 'member' AND a.entity_id = members.id AND a.action = 'member.created'
    ORDER BY a.at LIMIT 1);

-- A proposal whose household is removed ends as `cancelled`. SQLite cannot change a CHECK in
-- place: the table is rebuilt (nothing references it).
CREATE TABLE tag_changes_new (
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
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    decision_note TEXT
);
INSERT INTO tag_changes_new SELECT id, household_id, community_id, grid_id, from_tag, to_tag, reasons, note,
    proposed_by, proposed_at, status, decided_by, decided_at, decision_note FROM tag_changes;
DROP TABLE tag_changes;
ALTER TABLE tag_changes_new RENAME TO tag_changes;
CREATE UNIQUE INDEX tag_changes_one_pending ON tag_changes (household_id) WHERE status = 'pending';
CREATE INDEX tag_changes_household_idx ON tag_changes (household_id, decided_at);
CREATE INDEX tag_changes_community_idx ON tag_changes (community_id, status, proposed_at);
CREATE INDEX tag_changes_grid_idx ON tag_changes (grid_id, status, proposed_at);
CREATE INDEX tag_changes_applied_idx ON tag_changes (household_id, decided_at, from_tag, status) WHERE status = 'approved';

-- Proposals already stranded on removed households end now.
UPDATE tag_changes SET status = 'cancelled', decided_at = (SELECT h.removed_at FROM households h WHERE h.id = tag_changes.household_id),
    decision_note = 'household removed'
WHERE status = 'pending' AND EXISTS (SELECT 1 FROM households h WHERE h.id = tag_changes.household_id AND h.removed_at IS NOT NULL);
