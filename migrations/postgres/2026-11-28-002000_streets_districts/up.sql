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
       now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
FROM communities c GROUP BY c.division_code;
INSERT INTO streets (id, district_id, name, code, created_at, updated_at)
SELECT '00000000-0000-7000-8001-' || d.division_code || '000000', d.id, '默认街道', d.division_code || '000',
       d.created_at, d.updated_at
FROM districts d;

ALTER TABLE communities ADD COLUMN street_id TEXT REFERENCES streets (id);
UPDATE communities SET street_id = '00000000-0000-7000-8001-' || division_code || '000000';
ALTER TABLE communities ALTER COLUMN street_id SET NOT NULL;
CREATE INDEX communities_street_idx ON communities (street_id, name);

ALTER TABLE users ADD COLUMN street_id TEXT REFERENCES streets (id);
ALTER TABLE users ADD COLUMN district_id TEXT REFERENCES districts (id);
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users DROP CONSTRAINT users_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'secretary', 'grid_worker', 'street_officer', 'district_officer'));
-- Each role is held to exactly one unit: none (admin), a community, a street or a district.
ALTER TABLE users ADD CONSTRAINT users_check CHECK (
    (role = 'admin' AND community_id IS NULL AND street_id IS NULL AND district_id IS NULL)
    OR (role IN ('secretary', 'grid_worker') AND community_id IS NOT NULL AND street_id IS NULL AND district_id IS NULL)
    OR (role = 'street_officer' AND community_id IS NULL AND street_id IS NOT NULL AND district_id IS NULL)
    OR (role = 'district_officer' AND community_id IS NULL AND street_id IS NULL AND district_id IS NOT NULL));
CREATE INDEX users_street_idx ON users (street_id) WHERE street_id IS NOT NULL;
CREATE INDEX users_district_idx ON users (district_id) WHERE district_id IS NOT NULL;
