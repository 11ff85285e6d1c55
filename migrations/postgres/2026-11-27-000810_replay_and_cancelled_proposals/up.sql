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

-- A proposal whose household is removed ends as `cancelled`.
ALTER TABLE tag_changes DROP CONSTRAINT tag_changes_status_check;
ALTER TABLE tag_changes ADD CONSTRAINT tag_changes_status_check
    CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled'));

-- Proposals already stranded on removed households end now.
UPDATE tag_changes SET status = 'cancelled', decided_at = h.removed_at, decision_note = 'household removed'
FROM households h
WHERE h.id = tag_changes.household_id AND tag_changes.status = 'pending' AND h.removed_at IS NOT NULL;
