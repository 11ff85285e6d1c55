PRAGMA defer_foreign_keys = ON;

DELETE FROM users WHERE role IN ('street_officer', 'district_officer');
CREATE TABLE users_old AS SELECT * FROM users;
DROP TABLE users;
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    phone TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'secretary', 'grid_worker')),
    community_id TEXT REFERENCES communities (id),
    active BOOLEAN NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    credentials_changed_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    phone_bidx TEXT,
    CHECK ((role = 'admin' AND community_id IS NULL) OR (role <> 'admin' AND community_id IS NOT NULL))
);
INSERT INTO users SELECT id, username, display_name, phone, role, community_id, active, password_hash,
    credentials_changed_at, version, created_at, updated_at, phone_bidx FROM users_old;
DROP TABLE users_old;
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE INDEX users_community_idx ON users (community_id, role);
CREATE INDEX users_phone_bidx_idx ON users (phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE TRIGGER users_sync_insert AFTER INSERT ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;
CREATE TRIGGER users_sync_update AFTER UPDATE OF display_name, phone, role, community_id, active ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;

CREATE TABLE communities_old AS SELECT * FROM communities;
DROP TABLE communities;
CREATE TABLE communities (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    district TEXT NOT NULL,
    street TEXT NOT NULL,
    division_code TEXT NOT NULL CHECK (length(division_code) = 6),
    timezone TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO communities SELECT id, name, district, street, division_code, timezone, version, created_at, updated_at
FROM communities_old;
DROP TABLE communities_old;
CREATE UNIQUE INDEX communities_division_street_name_key ON communities (division_code, street, name);

DROP TABLE streets;
DROP TABLE districts;
