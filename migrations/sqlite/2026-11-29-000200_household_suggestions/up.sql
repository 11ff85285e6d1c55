-- Each household's suggested tag and its explanation, kept so that a page of households does not
-- read every member to work it out (issue 23). A row holds what `domain::suggest` gives from
-- `computed_on` until the day before `valid_until` (a member's next birthday: ages are in the
-- explanation). Triggers mark a row stale (`valid_until` in the past, its text wiped) in the same
-- transaction as any change of the household's members or recorded reasons; the server
-- recomputes stale rows in the background and answers from the members until then.
CREATE TABLE household_suggestions (
    household_id TEXT PRIMARY KEY NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    computed_on DATE NOT NULL DEFAULT '0001-01-01',
    valid_until DATE NOT NULL DEFAULT '0001-01-01',
    suggestion TEXT NOT NULL DEFAULT ''
);
CREATE INDEX household_suggestions_due ON household_suggestions (valid_until);
INSERT INTO household_suggestions (household_id) SELECT id FROM households;

CREATE TRIGGER households_suggestion_insert AFTER INSERT ON households BEGIN
    INSERT INTO household_suggestions (household_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
END;

CREATE TRIGGER households_suggestion_reasons AFTER UPDATE OF tag_reasons ON households
WHEN OLD.tag_reasons IS NOT NEW.tag_reasons BEGIN
    UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
    WHERE household_id = NEW.id;
END;

CREATE TRIGGER members_suggestion_insert AFTER INSERT ON members BEGIN
    UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
    WHERE household_id = NEW.household_id;
END;

CREATE TRIGGER members_suggestion_update AFTER UPDATE ON members BEGIN
    UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
    WHERE household_id IN (OLD.household_id, NEW.household_id);
END;

CREATE TRIGGER members_suggestion_delete AFTER DELETE ON members BEGIN
    UPDATE household_suggestions SET valid_until = '0001-01-01', suggestion = ''
    WHERE household_id = OLD.household_id;
END;
