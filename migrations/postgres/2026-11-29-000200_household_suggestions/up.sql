-- Each household's suggested tag and its explanation, kept so that a page of households does not
-- read every member to work it out (issue 23). A row holds what `domain::suggest` gives from
-- `computed_on` until the day before `valid_until` (a member's next birthday: ages are in the
-- explanation). Triggers mark a row stale (`valid_until` in the past, its text wiped) in the same
-- transaction as any change of the household's members or recorded reasons; the server
-- recomputes stale rows in the background and answers from the members until then.
CREATE TABLE household_suggestions (
    household_id TEXT PRIMARY KEY REFERENCES households (id) ON DELETE CASCADE,
    computed_on DATE NOT NULL DEFAULT '0001-01-01',
    valid_until DATE NOT NULL DEFAULT '0001-01-01',
    suggestion TEXT NOT NULL DEFAULT ''
);
CREATE INDEX household_suggestions_due ON household_suggestions (valid_until);
INSERT INTO household_suggestions (household_id) SELECT id FROM households;

CREATE FUNCTION household_suggestion_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO household_suggestions (household_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER households_suggestion_insert AFTER INSERT ON households
    FOR EACH ROW EXECUTE FUNCTION household_suggestion_insert();

-- Marks the suggestion of the household a row belongs to stale (households: the row itself;
-- members: its household before and after).
CREATE FUNCTION household_suggestion_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'households' THEN
        UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
        WHERE household_id = NEW.id;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
        WHERE household_id = OLD.household_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.household_id IS DISTINCT FROM OLD.household_id) THEN
        UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
        WHERE household_id = NEW.household_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER households_suggestion_reasons AFTER UPDATE OF tag_reasons ON households
    FOR EACH ROW WHEN (OLD.tag_reasons IS DISTINCT FROM NEW.tag_reasons)
    EXECUTE FUNCTION household_suggestion_stale();
CREATE TRIGGER members_suggestion AFTER INSERT OR UPDATE OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION household_suggestion_stale();
