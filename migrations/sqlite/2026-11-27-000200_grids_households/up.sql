CREATE TABLE grids (
    id TEXT PRIMARY KEY NOT NULL,
    community_id TEXT NOT NULL REFERENCES communities (id),
    code TEXT NOT NULL CHECK (length(code) = 14),
    name TEXT NOT NULL,
    description TEXT,
    station_name TEXT,
    station_address TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX grids_code_key ON grids (code);
CREATE INDEX grids_community_idx ON grids (community_id, code);

CREATE TABLE grid_assignments (
    grid_id TEXT NOT NULL REFERENCES grids (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    is_primary BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (grid_id, user_id)
);
CREATE UNIQUE INDEX grid_assignments_one_primary ON grid_assignments (grid_id) WHERE is_primary;
CREATE INDEX grid_assignments_user_idx ON grid_assignments (user_id, grid_id);

CREATE TABLE households (
    id TEXT PRIMARY KEY NOT NULL,
    grid_id TEXT NOT NULL REFERENCES grids (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    building TEXT NOT NULL,
    unit TEXT NOT NULL,
    room TEXT NOT NULL,
    head_name TEXT NOT NULL,
    phone TEXT,
    tag TEXT NOT NULL DEFAULT 'green' CHECK (tag IN ('red', 'yellow', 'green')),
    tag_reasons TEXT NOT NULL DEFAULT '[]',
    tag_note TEXT,
    tag_set_at TIMESTAMP,
    tag_set_by TEXT REFERENCES users (id),
    tag_review_due_on DATE,
    notes TEXT,
    member_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP,
    removed_reason TEXT CHECK (removed_reason IN ('moved_out', 'deceased', 'merged', 'other')),
    removed_note TEXT
);
-- list filters: by grid, by community, by tag, review due, updated_since; all keyset-paginated by id
CREATE INDEX households_grid_idx ON households (grid_id, id) WHERE removed_at IS NULL;
CREATE INDEX households_community_idx ON households (community_id, id) WHERE removed_at IS NULL;
CREATE INDEX households_community_tag_idx ON households (community_id, tag, id) WHERE removed_at IS NULL;
CREATE INDEX households_grid_tag_idx ON households (grid_id, tag, id) WHERE removed_at IS NULL;
CREATE INDEX households_review_due_idx ON households (community_id, tag_review_due_on) WHERE removed_at IS NULL;
CREATE INDEX households_updated_idx ON households (updated_at, id);

CREATE TABLE members (
    id TEXT PRIMARY KEY NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    name TEXT NOT NULL,
    gender TEXT NOT NULL CHECK (gender IN ('male', 'female')),
    birth_date DATE,
    id_number TEXT,
    phone TEXT,
    relation TEXT NOT NULL CHECK (relation IN ('head', 'spouse', 'child', 'parent', 'grandchild', 'other')),
    living_alone BOOLEAN NOT NULL DEFAULT 0,
    disability_grade INTEGER CHECK (disability_grade BETWEEN 1 AND 4),
    chronic_illness BOOLEAN NOT NULL DEFAULT 0,
    serious_illness BOOLEAN NOT NULL DEFAULT 0,
    low_income BOOLEAN NOT NULL DEFAULT 0,
    extreme_poverty BOOLEAN NOT NULL DEFAULT 0,
    notes TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP
);
CREATE INDEX members_household_idx ON members (household_id, id);
CREATE INDEX members_id_number_idx ON members (id_number) WHERE id_number IS NOT NULL;
