DROP TRIGGER members_suggestion ON members;
DROP TRIGGER households_suggestion_reasons ON households;
DROP TRIGGER households_suggestion_insert ON households;
DROP FUNCTION household_suggestion_stale();
DROP FUNCTION household_suggestion_insert();
DROP TABLE household_suggestions;
