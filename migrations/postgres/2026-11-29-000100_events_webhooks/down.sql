DROP TABLE webhook_dead_letters;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;

DROP TRIGGER tag_changes_sync ON tag_changes;
CREATE TRIGGER tag_changes_sync AFTER INSERT OR UPDATE ON tag_changes
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('tag_change');
DROP FUNCTION sync_log_tag_change();
DROP TRIGGER visits_sync ON visits;
CREATE TRIGGER visits_sync AFTER INSERT OR UPDATE ON visits
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('visit');
DROP FUNCTION sync_log_visit();
DROP TRIGGER tasks_sync ON tasks;
CREATE TRIGGER tasks_sync AFTER INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION sync_log_household_part('task');
DROP FUNCTION sync_log_task();

CREATE OR REPLACE FUNCTION sync_log_household() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id, grid_id, old_grid_id, household_id)
    VALUES ('household', NEW.id, NEW.community_id, NEW.grid_id,
            CASE WHEN TG_OP = 'UPDATE' AND OLD.grid_id <> NEW.grid_id THEN OLD.grid_id END, NEW.id);
    RETURN NULL;
END $$;

DROP TABLE event_marks;
DROP TABLE event_counter;
DROP INDEX sync_log_unsequenced_idx;
DROP INDEX sync_log_event_community_idx;
DROP INDEX sync_log_event_id_idx;
ALTER TABLE sync_log DROP COLUMN event_id, DROP COLUMN detail, DROP COLUMN event;
