DROP TRIGGER users_account_changed ON users;
DROP FUNCTION gridlight_account_changed();
