-- Events for third-party apps (docs/events.md), kept in the sync change log: a change that is
-- an event (a household turned red, a visit recorded, …) names it on the log row its trigger
-- writes anyway, with a small JSON `detail` of ids, tags and codes — never a name, an ID
-- number, a phone or a note. A change that is two events at once (removed and moved) writes a
-- second row for the second.
--
-- Event ids follow commit order: `seq` is taken before commit, so a row may become visible after
-- a higher-numbered one. A sequencer (src/store/events.rs) numbers committed event rows as it
-- finds them, in `seq` order, from `event_counter`: a late commit is numbered late, and a reader
-- that reads by `event_id` never misses one.
ALTER TABLE sync_log ADD COLUMN event TEXT, ADD COLUMN detail TEXT, ADD COLUMN event_id BIGINT;
CREATE UNIQUE INDEX sync_log_event_id_idx ON sync_log (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX sync_log_event_community_idx ON sync_log (community_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX sync_log_unsequenced_idx ON sync_log (seq) WHERE event IS NOT NULL AND event_id IS NULL;

-- The last event id handed out, and the highest one pruned with the log (a reader after it
-- missed nothing; before it, events are gone).
CREATE TABLE event_counter (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_counter (one, last, pruned_through) VALUES (TRUE, 0, 0);

-- Events the server's job emits (a task past its due date, a tag review due): one mark per
-- record and date, so each is emitted once however many instances run the job.
CREATE TABLE event_marks (
    event TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    due_on DATE NOT NULL,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (event, entity_id, due_on)
);
CREATE INDEX event_marks_at_idx ON event_marks (at);

CREATE OR REPLACE FUNCTION sync_log_household() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    events TEXT[] := '{}';
    details TEXT[] := '{}';
    old_grid TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        events := events || 'household.registered'::text;
        details := details || json_build_object('tag', NEW.tag)::text;
    ELSE
        IF OLD.grid_id <> NEW.grid_id THEN old_grid := OLD.grid_id; END IF;
        IF OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL THEN
            events := events || 'household.removed'::text;
            details := details || json_build_object('reason', NEW.removed_reason)::text;
        END IF;
        IF OLD.grid_id <> NEW.grid_id THEN
            events := events || 'household.moved'::text;
            details := details || json_build_object('from_grid_id', OLD.grid_id, 'to_grid_id', NEW.grid_id)::text;
        END IF;
        IF OLD.tag <> NEW.tag THEN
            events := events || 'household.tag_changed'::text;
            details := details || json_build_object('from', OLD.tag, 'to', NEW.tag)::text;
        END IF;
    END IF;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id, old_grid, NEW.id, events[1], details[1]);
    FOR i IN 2 .. coalesce(array_length(events, 1), 0) LOOP
        INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id, event, detail)
        VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id, old_grid, NEW.id, events[i], details[i]);
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION sync_log_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev TEXT;
    det TEXT;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.assignee_id IS DISTINCT FROM NEW.assignee_id THEN
        ev := 'task.reassigned';
        det := json_build_object('from_assignee_id', OLD.assignee_id, 'to_assignee_id', NEW.assignee_id,
                                 'due_on', NEW.due_on, 'tag', NEW.tag)::text;
    END IF;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'task', NEW.id, h.community_id, h.grid_id, h.id, ev, det FROM households h WHERE h.id = NEW.household_id;
    RETURN NULL;
END $$;
DROP TRIGGER tasks_sync ON tasks;
CREATE TRIGGER tasks_sync AFTER INSERT OR UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION sync_log_task();

CREATE FUNCTION sync_log_visit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev TEXT;
    det TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        ev := 'visit.recorded';
        det := json_build_object('kind', NEW.kind, 'worker_id', NEW.worker_id)::text;
    END IF;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'visit', NEW.id, h.community_id, h.grid_id, h.id, ev, det FROM households h WHERE h.id = NEW.household_id;
    RETURN NULL;
END $$;
DROP TRIGGER visits_sync ON visits;
CREATE TRIGGER visits_sync AFTER INSERT OR UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION sync_log_visit();

CREATE FUNCTION sync_log_tag_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev TEXT;
    det TEXT;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.status = 'pending' THEN
        ev := 'tag_change.proposed';
        det := json_build_object('from', NEW.from_tag, 'to', NEW.to_tag, 'proposed_by', NEW.proposed_by)::text;
    ELSIF NEW.status <> 'pending' AND (TG_OP = 'INSERT' OR OLD.status = 'pending') THEN
        ev := 'tag_change.decided';
        det := json_build_object('from', NEW.from_tag, 'to', NEW.to_tag, 'status', NEW.status,
                                 'decided_by', NEW.decided_by)::text;
    END IF;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id, event, detail)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id, ev, det FROM households h WHERE h.id = NEW.household_id;
    RETURN NULL;
END $$;
DROP TRIGGER tag_changes_sync ON tag_changes;
CREATE TRIGGER tag_changes_sync AFTER INSERT OR UPDATE ON tag_changes FOR EACH ROW EXECUTE FUNCTION sync_log_tag_change();

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
    cursor BIGINT NOT NULL,
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
    id BIGSERIAL PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
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
    event_id BIGINT NOT NULL,
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
