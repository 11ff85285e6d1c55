DELETE FROM users WHERE role IN ('street_officer', 'district_officer');
ALTER TABLE users DROP CONSTRAINT users_check;
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users DROP COLUMN street_id;
ALTER TABLE users DROP COLUMN district_id;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'secretary', 'grid_worker'));
ALTER TABLE users ADD CONSTRAINT users_check
    CHECK ((role = 'admin' AND community_id IS NULL) OR (role <> 'admin' AND community_id IS NOT NULL));
ALTER TABLE communities DROP COLUMN street_id;
DROP TABLE streets;
DROP TABLE districts;
