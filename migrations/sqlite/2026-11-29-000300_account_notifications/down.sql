-- Nothing to do on SQLite: one process serves a SQLite database, and it forgets the accounts it
-- changes itself (src/db/accounts.rs). PostgreSQL's migration of this name adds the trigger that
-- tells every instance of an account's change.
SELECT 1;
