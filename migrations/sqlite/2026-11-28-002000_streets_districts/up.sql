-- Streets (街道) and districts (区) above the community (issue 20). A district is a GB/T 2260
-- county-level division; a street has the 9-digit code the CJ/T 349 grid codes start with (the
-- division code + 3 digits). Every community belongs to a street: an existing database gets one
-- district per division code its communities name, with one default street (`<code>000`) holding
-- them all, to be reassigned by an administrator.
CREATE TABLE districts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    division_code TEXT NOT NULL CHECK (length(division_code) = 6),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX districts_division_code_key ON districts (division_code);

CREATE TABLE streets (
    id TEXT PRIMARY KEY NOT NULL,
    district_id TEXT NOT NULL REFERENCES districts (id),
    name TEXT NOT NULL,
    code TEXT NOT NULL CHECK (length(code) = 9),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX streets_code_key ON streets (code);
CREATE UNIQUE INDEX streets_district_name_key ON streets (district_id, name);

-- Deterministic ids (UUID-shaped, version 7 nibble) so both backends migrate alike.
INSERT INTO districts (id, name, division_code, created_at, updated_at)
SELECT '00000000-0000-7000-8000-' || c.division_code || '000000', min(c.district), c.division_code,
       strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM communities c GROUP BY c.division_code;
INSERT INTO streets (id, district_id, name, code, created_at, updated_at)
SELECT '00000000-0000-7000-8001-' || d.division_code || '000000', d.id, '默认街道', d.division_code || '000',
       d.created_at, d.updated_at
FROM districts d;

-- SQLite cannot add a NOT NULL reference or change a CHECK in place: communities and users are
-- rebuilt. Their rows are referenced from many tables, so the checks of those references wait
-- for the commit (dropping the old table counts its children as orphans, inserting the rows
-- into the new one counts them found again).
PRAGMA defer_foreign_keys = ON;

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
    updated_at TIMESTAMP NOT NULL,
    street_id TEXT NOT NULL REFERENCES streets (id)
);
INSERT INTO communities (id, name, district, street, division_code, timezone, version, created_at, updated_at, street_id)
SELECT id, name, district, street, division_code, timezone, version, created_at, updated_at,
       '00000000-0000-7000-8001-' || division_code || '000000'
FROM communities_old;
DROP TABLE communities_old;
CREATE UNIQUE INDEX communities_division_street_name_key ON communities (division_code, street, name);
CREATE INDEX communities_street_idx ON communities (street_id, name);

CREATE TABLE users_old AS SELECT * FROM users;
DROP TABLE users;
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    phone TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'secretary', 'grid_worker', 'street_officer', 'district_officer')),
    community_id TEXT REFERENCES communities (id),
    active BOOLEAN NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    -- bumped on password change and deactivation; tokens issued before it stop working
    credentials_changed_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    phone_bidx TEXT,
    street_id TEXT REFERENCES streets (id),
    district_id TEXT REFERENCES districts (id),
    -- Each role is held to exactly one unit: none (admin), a community, a street or a district.
    CHECK ((role = 'admin' AND community_id IS NULL AND street_id IS NULL AND district_id IS NULL)
        OR (role IN ('secretary', 'grid_worker') AND community_id IS NOT NULL AND street_id IS NULL AND district_id IS NULL)
        OR (role = 'street_officer' AND community_id IS NULL AND street_id IS NOT NULL AND district_id IS NULL)
        OR (role = 'district_officer' AND community_id IS NULL AND street_id IS NULL AND district_id IS NOT NULL))
);
INSERT INTO users (id, username, display_name, phone, role, community_id, active, password_hash,
                   credentials_changed_at, version, created_at, updated_at, phone_bidx)
SELECT id, username, display_name, phone, role, community_id, active, password_hash,
       credentials_changed_at, version, created_at, updated_at, phone_bidx
FROM users_old;
DROP TABLE users_old;
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE INDEX users_community_idx ON users (community_id, role);
CREATE INDEX users_phone_bidx_idx ON users (phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE INDEX users_street_idx ON users (street_id) WHERE street_id IS NOT NULL;
CREATE INDEX users_district_idx ON users (district_id) WHERE district_id IS NOT NULL;
CREATE TRIGGER users_sync_insert AFTER INSERT ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;
CREATE TRIGGER users_sync_update AFTER UPDATE OF display_name, phone, role, community_id, active ON users BEGIN
    INSERT INTO sync_log (entity, entity_id, community_id) VALUES ('user', NEW.id, NEW.community_id);
END;
