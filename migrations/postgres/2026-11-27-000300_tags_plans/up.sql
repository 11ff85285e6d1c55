CREATE TABLE tag_changes (
    id TEXT PRIMARY KEY NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    grid_id TEXT NOT NULL REFERENCES grids (id),
    from_tag TEXT NOT NULL CHECK (from_tag IN ('red', 'yellow', 'green')),
    to_tag TEXT NOT NULL CHECK (to_tag IN ('red', 'yellow', 'green')),
    reasons TEXT NOT NULL DEFAULT '[]',
    note TEXT,
    proposed_by TEXT NOT NULL REFERENCES users (id),
    proposed_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    decided_by TEXT REFERENCES users (id),
    decided_at TIMESTAMP,
    decision_note TEXT
);
-- at most one pending proposal per household, enforced by the database
CREATE UNIQUE INDEX tag_changes_one_pending ON tag_changes (household_id) WHERE status = 'pending';
CREATE INDEX tag_changes_household_idx ON tag_changes (household_id, decided_at);
CREATE INDEX tag_changes_community_idx ON tag_changes (community_id, status, proposed_at);
CREATE INDEX tag_changes_grid_idx ON tag_changes (grid_id, status, proposed_at);

CREATE TABLE service_plans (
    id TEXT PRIMARY KEY NOT NULL,
    community_id TEXT NOT NULL REFERENCES communities (id),
    tag TEXT NOT NULL CHECK (tag IN ('red', 'yellow', 'green')),
    review_interval_days INTEGER NOT NULL CHECK (review_interval_days BETWEEN 1 AND 3660),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX service_plans_community_tag_key ON service_plans (community_id, tag);

CREATE TABLE service_templates (
    id TEXT PRIMARY KEY NOT NULL,
    plan_id TEXT NOT NULL REFERENCES service_plans (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    tag TEXT NOT NULL CHECK (tag IN ('red', 'yellow', 'green')),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('home_visit', 'phone_call', 'service')),
    interval_days INTEGER NOT NULL CHECK (interval_days BETWEEN 1 AND 365),
    active BOOLEAN NOT NULL DEFAULT TRUE,
    position INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- at most one active template of a kind per (community, tag)
CREATE UNIQUE INDEX service_templates_one_active_kind ON service_templates (community_id, tag, kind) WHERE active;
CREATE INDEX service_templates_plan_idx ON service_templates (plan_id, position);
