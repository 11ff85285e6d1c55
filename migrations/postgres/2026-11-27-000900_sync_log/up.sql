-- The change log the sync feed reads (src/store/sync.rs): one row per change of a record a
-- device may hold, written by triggers, so that no write path can forget it. A row names the
-- record and where it was (community, grid, household) — and for a household that moved, the
-- grid it left — never its content: the feed reads the record's current state.
--
-- `txid` is the writing transaction: a reader serves the rows of the transactions that became
-- visible between two of its snapshots (pg_visible_in_snapshot), so a row whose transaction
-- commits after a later-numbered one is never skipped.
CREATE TABLE sync_log (
    seq BIGSERIAL PRIMARY KEY,
    txid XID8 NOT NULL DEFAULT pg_current_xact_id(),
    at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    community_id TEXT,
    grid_id TEXT,
    old_grid_id TEXT,
    household_id TEXT
);
CREATE INDEX sync_log_community_idx ON sync_log (community_id, seq);
CREATE INDEX sync_log_txid_idx ON sync_log (txid);
CREATE INDEX sync_log_entity_idx ON sync_log (entity, entity_id, seq);
CREATE INDEX sync_log_at_idx ON sync_log (at);

CREATE FUNCTION sync_log_household() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id,
            CASE WHEN TG_OP = 'UPDATE' AND OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER households_sync AFTER INSERT OR UPDATE ON households
    FOR EACH ROW EXECUTE FUNCTION sync_log_household();

-- Records that belong to a household are placed where their household is now.
CREATE FUNCTION sync_log_household_part() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT TG_ARGV[0], NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
    RETURN NULL;
END $$;
CREATE TRIGGER members_sync AFTER INSERT OR UPDATE ON members
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('member');
CREATE TRIGGER tasks_sync AFTER INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('task');
CREATE TRIGGER visits_sync AFTER INSERT OR UPDATE ON visits
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('visit');
CREATE TRIGGER tag_changes_sync AFTER INSERT OR UPDATE ON tag_changes
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('tag_change');

CREATE FUNCTION sync_log_grid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id)
    VALUES ('grid', NEW.id, NEW.community_id, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER grids_sync AFTER INSERT OR UPDATE ON grids FOR EACH ROW EXECUTE FUNCTION sync_log_grid();

-- A grid's workers changed: its record changed (it lists them), and so did the scope of the
-- workers who joined or left it.
CREATE FUNCTION sync_log_assignment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    a grid_assignments;
BEGIN
    IF TG_OP = 'DELETE' THEN a := OLD; ELSE a := NEW; END IF;
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id)
    SELECT 'grid', g.id, g.community_id, g.id FROM grids g WHERE g.id = a.grid_id;
    RETURN NULL;
END $$;
CREATE TRIGGER grid_assignments_sync AFTER INSERT OR UPDATE OR DELETE ON grid_assignments
    FOR EACH ROW EXECUTE FUNCTION sync_log_assignment();

CREATE FUNCTION sync_log_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
    RETURN NULL;
END $$;
CREATE TRIGGER users_sync AFTER INSERT OR UPDATE OF display_name, phone, role, community_id, active ON users
    FOR EACH ROW EXECUTE FUNCTION sync_log_user();

CREATE FUNCTION sync_log_plan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.plan_id, NEW.community_id);
    RETURN NULL;
END $$;
CREATE TRIGGER service_templates_sync AFTER INSERT OR UPDATE ON service_templates
    FOR EACH ROW EXECUTE FUNCTION sync_log_plan();
CREATE FUNCTION sync_log_plan_itself() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.id, NEW.community_id);
    RETURN NULL;
END $$;
CREATE TRIGGER service_plans_sync AFTER INSERT OR UPDATE ON service_plans
    FOR EACH ROW EXECUTE FUNCTION sync_log_plan_itself();

-- Pushed operations already applied, by the account and the client's operation id: a replay
-- answers `duplicate` with the record instead of applying it twice.
CREATE TABLE sync_operations (
    user_id TEXT NOT NULL REFERENCES users (id),
    op_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT,
    entity_id TEXT,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, op_id)
);
CREATE INDEX sync_operations_at_idx ON sync_operations (at);
