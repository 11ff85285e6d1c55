-- Events for third-party apps (docs/events.md), kept in the sync change log: a change that is
-- an event (a household turned red, a visit recorded, …) names it on the log row its trigger
-- writes anyway, with a small JSON `detail` of ids, tags and codes — never a name, an ID
-- number, a phone or a note. A change that is two events at once (removed and moved) writes a
-- second row for the second. SQLite has one writer at a time, so `seq` order is commit order
-- and an event's id is its row's `seq` (AUTOINCREMENT: never reused).
ALTER TABLE sync_log ADD COLUMN event TEXT;
ALTER TABLE sync_log ADD COLUMN detail TEXT;
ALTER TABLE sync_log ADD COLUMN event_id INTEGER;
CREATE UNIQUE INDEX sync_log_event_id_idx ON sync_log (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX sync_log_event_community_idx ON sync_log (community_id, event_id) WHERE event_id IS NOT NULL;

CREATE TRIGGER sync_log_event_id AFTER INSERT ON sync_log WHEN NEW.event IS NOT NULL BEGIN
    UPDATE sync_log SET event_id = NEW.seq WHERE seq = NEW.seq;
END;

-- The highest event id pruned with the log (a reader after it missed nothing; before it,
-- events are gone). `last` is PostgreSQL's numbering; unused here.
CREATE TABLE event_counter (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last INTEGER NOT NULL,
    pruned_through INTEGER NOT NULL
);
INSERT INTO event_counter (one, last, pruned_through) VALUES (TRUE, 0, 0);

-- Events the server's job emits (a task past its due date, a tag review due): one mark per
-- record and date, so each is emitted once.
CREATE TABLE event_marks (
    event TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    due_on DATE NOT NULL,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (event, entity_id, due_on)
);
CREATE INDEX event_marks_at_idx ON event_marks (at);

DROP TRIGGER households_sync_insert;
CREATE TRIGGER households_sync_insert AFTER INSERT ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id, NULL, NEW.id,
            'household.registered', json_object('tag', NEW.tag));
END;

-- The change with its first event (removed, moved, tag changed, in that order); a second or
-- third event of the same change on rows of their own.
DROP TRIGGER households_sync_update;
CREATE TRIGGER households_sync_update AFTER UPDATE ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id,
            CASE WHEN OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id,
            CASE WHEN OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL THEN 'household.removed'
                 WHEN OLD.grid_id <> NEW.grid_id THEN 'household.moved'
                 WHEN OLD.tag <> NEW.tag THEN 'household.tag_changed' END,
            CASE WHEN OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL THEN json_object('reason', NEW.removed_reason)
                 WHEN OLD.grid_id <> NEW.grid_id THEN json_object('from_grid_id', OLD.grid_id, 'to_grid_id', NEW.grid_id)
                 WHEN OLD.tag <> NEW.tag THEN json_object('from', OLD.tag, 'to', NEW.tag) END);
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
    SELECT 'household', NEW.id, NEW.community_id, NEW.grid_id, OLD.grid_id, NEW.id,
           'household.moved', json_object('from_grid_id', OLD.grid_id, 'to_grid_id', NEW.grid_id)
    WHERE OLD.grid_id <> NEW.grid_id AND OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
    SELECT 'household', NEW.id, NEW.community_id, NEW.grid_id,
           CASE WHEN OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id,
           'household.tag_changed', json_object('from', OLD.tag, 'to', NEW.tag)
    WHERE OLD.tag <> NEW.tag AND (OLD.grid_id <> NEW.grid_id OR (OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL));
END;

DROP TRIGGER tasks_sync_update;
CREATE TRIGGER tasks_sync_update AFTER UPDATE ON tasks BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'task', NEW.id, h.community_id, h.grid_id, h.id,
           CASE WHEN OLD.assignee_id IS NOT NEW.assignee_id THEN 'task.reassigned' END,
           CASE WHEN OLD.assignee_id IS NOT NEW.assignee_id THEN
                json_object('from_assignee_id', OLD.assignee_id, 'to_assignee_id', NEW.assignee_id,
                            'due_on', NEW.due_on, 'tag', NEW.tag) END
    FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER visits_sync_insert;
CREATE TRIGGER visits_sync_insert AFTER INSERT ON visits BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'visit', NEW.id, h.community_id, h.grid_id, h.id, 'visit.recorded',
           json_object('kind', NEW.kind, 'worker_id', NEW.worker_id)
    FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER tag_changes_sync_insert;
CREATE TRIGGER tag_changes_sync_insert AFTER INSERT ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id,
           CASE WHEN NEW.status = 'pending' THEN 'tag_change.proposed' ELSE 'tag_change.decided' END,
           CASE WHEN NEW.status = 'pending'
                THEN json_object('from', NEW.from_tag, 'to', NEW.to_tag, 'proposed_by', NEW.proposed_by)
                ELSE json_object('from', NEW.from_tag, 'to', NEW.to_tag, 'status', NEW.status, 'decided_by', NEW.decided_by) END
    FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER tag_changes_sync_update;
CREATE TRIGGER tag_changes_sync_update AFTER UPDATE ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id,
           CASE WHEN OLD.status = 'pending' AND NEW.status <> 'pending' THEN 'tag_change.decided' END,
           CASE WHEN OLD.status = 'pending' AND NEW.status <> 'pending'
                THEN json_object('from', NEW.from_tag, 'to', NEW.to_tag, 'status', NEW.status, 'decided_by', NEW.decided_by) END
    FROM households h WHERE h.id = NEW.household_id;
END;

-- Webhook subscriptions (src/webhooks): where events go, which, and how far delivery got.
-- `community_id` NULL: every community's events (an administrator's subscription). The secret
-- is sealed with the data key. `cursor` is the last event id handled (delivered or parked);
-- `lease_*` is the instance delivering it now (until the lease runs out: a stopped instance's
-- lease passes to another).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    community_id TEXT REFERENCES communities (id),
    url TEXT NOT NULL,
    types TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    active BOOLEAN NOT NULL,
    description TEXT,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failing_since TIMESTAMP,
    next_attempt_at TIMESTAMP NOT NULL,
    last_success_at TIMESTAMP,
    last_error TEXT,
    disabled_reason TEXT,
    lease_until TIMESTAMP,
    lease_token TEXT
);
CREATE INDEX webhooks_due_idx ON webhooks (next_attempt_at) WHERE active;
CREATE INDEX webhooks_community_idx ON webhooks (community_id, id);

-- Every delivery attempt: what happened, for the subscription's owner.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'parked', 'resent', 'resend_failed')),
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    next_attempt_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_at_idx ON webhook_deliveries (at);

-- Events given up on after the retry period, with the body that was sent, until re-sent.
CREATE TABLE webhook_dead_letters (
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    parked_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    resend_requested_at TIMESTAMP,
    resent_at TIMESTAMP,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX webhook_dead_letters_resend_idx ON webhook_dead_letters (webhook_id) WHERE resend_requested_at IS NOT NULL;
