CREATE TABLE visits (
    id TEXT PRIMARY KEY NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    grid_id TEXT NOT NULL REFERENCES grids (id),
    worker_id TEXT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL CHECK (kind IN ('home_visit', 'phone_call', 'service')),
    visited_at TIMESTAMP NOT NULL,
    notes TEXT,
    findings TEXT NOT NULL DEFAULT '[]',
    location_lat DOUBLE PRECISION,
    location_lng DOUBLE PRECISION,
    location_accuracy_m DOUBLE PRECISION,
    -- hash of the submitted content, so that a retry with the same id can be told from a conflict
    content_hash TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX visits_household_idx ON visits (household_id, kind, visited_at);
CREATE INDEX visits_grid_idx ON visits (grid_id, visited_at);
CREATE INDEX visits_worker_idx ON visits (worker_id, visited_at);
CREATE INDEX visits_community_idx ON visits (community_id, visited_at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    template_id TEXT NOT NULL REFERENCES service_templates (id),
    community_id TEXT NOT NULL REFERENCES communities (id),
    grid_id TEXT NOT NULL REFERENCES grids (id),
    tag TEXT NOT NULL CHECK (tag IN ('red', 'yellow', 'green')),
    kind TEXT NOT NULL CHECK (kind IN ('home_visit', 'phone_call', 'service')),
    assignee_id TEXT REFERENCES users (id),
    due_on DATE NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    completed_at TIMESTAMP,
    visit_id TEXT REFERENCES visits (id),
    cancel_reason TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- the task invariant's uniqueness half: never two open tasks for one (household, template)
CREATE UNIQUE INDEX tasks_one_open ON tasks (household_id, template_id) WHERE status = 'open';
CREATE INDEX tasks_assignee_idx ON tasks (assignee_id, status, due_on);
CREATE INDEX tasks_grid_idx ON tasks (grid_id, status, due_on);
CREATE INDEX tasks_community_idx ON tasks (community_id, status, due_on);
CREATE INDEX tasks_household_idx ON tasks (household_id, status);
CREATE INDEX tasks_visit_idx ON tasks (visit_id) WHERE visit_id IS NOT NULL;
