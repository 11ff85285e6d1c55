-- The change log the sync feed reads (src/store/sync.rs): one row per change of a record a
-- device may hold, written by triggers, so that no write path can forget it. A row names the
-- record and where it was (community, grid, household) — and for a household that moved, the
-- grid it left — never its content: the feed reads the record's current state. SQLite has one
-- writer at a time, so `seq` order is commit order.
CREATE TABLE sync_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    community_id TEXT,
    grid_id TEXT,
    old_grid_id TEXT,
    household_id TEXT
);
CREATE INDEX sync_log_community_idx ON sync_log (community_id, seq);
CREATE INDEX sync_log_entity_idx ON sync_log (entity, entity_id, seq);
CREATE INDEX sync_log_at_idx ON sync_log (at);

CREATE TRIGGER households_sync_insert AFTER INSERT ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id, NULL, NEW.id);
END;

CREATE TRIGGER households_sync_update AFTER UPDATE ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id,
            CASE WHEN OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id);
END;

CREATE TRIGGER members_sync_insert AFTER INSERT ON members BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'member', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER members_sync_update AFTER UPDATE ON members BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'member', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER tasks_sync_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'task', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER tasks_sync_update AFTER UPDATE ON tasks BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'task', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER visits_sync_insert AFTER INSERT ON visits BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'visit', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER visits_sync_update AFTER UPDATE ON visits BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'visit', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER tag_changes_sync_insert AFTER INSERT ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER tag_changes_sync_update AFTER UPDATE ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

CREATE TRIGGER grids_sync_insert AFTER INSERT ON grids BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id) VALUES ('grid', NEW.id, NEW.community_id, NEW.id);
END;

CREATE TRIGGER grids_sync_update AFTER UPDATE ON grids BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id) VALUES ('grid', NEW.id, NEW.community_id, NEW.id);
END;

CREATE TRIGGER grid_assignments_sync_insert AFTER INSERT ON grid_assignments BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id)
    SELECT 'grid', g.id, g.community_id, g.id FROM grids g WHERE g.id = NEW.grid_id;
END;

CREATE TRIGGER grid_assignments_sync_update AFTER UPDATE ON grid_assignments BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id)
    SELECT 'grid', g.id, g.community_id, g.id FROM grids g WHERE g.id = NEW.grid_id;
END;

CREATE TRIGGER grid_assignments_sync_delete AFTER DELETE ON grid_assignments BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id)
    SELECT 'grid', g.id, g.community_id, g.id FROM grids g WHERE g.id = OLD.grid_id;
END;

CREATE TRIGGER users_sync_insert AFTER INSERT ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;

CREATE TRIGGER users_sync_update AFTER UPDATE OF display_name, phone, role, community_id, active ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;

CREATE TRIGGER service_templates_sync_insert AFTER INSERT ON service_templates BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.plan_id, NEW.community_id);
END;

CREATE TRIGGER service_templates_sync_update AFTER UPDATE ON service_templates BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.plan_id, NEW.community_id);
END;

CREATE TRIGGER service_plans_sync_insert AFTER INSERT ON service_plans BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.id, NEW.community_id);
END;

CREATE TRIGGER service_plans_sync_update AFTER UPDATE ON service_plans BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('plan', NEW.id, NEW.community_id);
END;

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
