DROP TABLE webhook_dead_letters;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;

DROP TRIGGER households_sync_insert;
CREATE TRIGGER households_sync_insert AFTER INSERT ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id, NULL, NEW.id);
END;

DROP TRIGGER households_sync_update;
CREATE TRIGGER households_sync_update AFTER UPDATE ON households BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id,
            CASE WHEN OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id);
END;

DROP TRIGGER tasks_sync_update;
CREATE TRIGGER tasks_sync_update AFTER UPDATE ON tasks BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'task', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER visits_sync_insert;
CREATE TRIGGER visits_sync_insert AFTER INSERT ON visits BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'visit', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER tag_changes_sync_insert;
CREATE TRIGGER tag_changes_sync_insert AFTER INSERT ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

DROP TRIGGER tag_changes_sync_update;
CREATE TRIGGER tag_changes_sync_update AFTER UPDATE ON tag_changes BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, household_id)
    SELECT 'tag_change', NEW.id, h.community_id, h.grid_id, h.id FROM households h WHERE h.id = NEW.household_id;
END;

DROP TABLE event_marks;
DROP TABLE event_counter;
DROP TRIGGER sync_log_event_id;
DROP INDEX sync_log_event_community_idx;
DROP INDEX sync_log_event_id_idx;
ALTER TABLE sync_log DROP COLUMN event_id;
ALTER TABLE sync_log DROP COLUMN detail;
ALTER TABLE sync_log DROP COLUMN event;
