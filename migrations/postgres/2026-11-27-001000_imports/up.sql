-- Roster imports: the uploaded file (committed exactly as it was checked), what its dry run
-- found, and where its commit stands.
CREATE TABLE imports (
    id TEXT PRIMARY KEY NOT NULL,
    community_id TEXT NOT NULL REFERENCES communities (id),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- validated | committed | failed
    status TEXT NOT NULL,
    format TEXT NOT NULL,
    file_name TEXT,
    file_sha256 TEXT NOT NULL,
    file BYTEA NOT NULL,
    -- What the dry run found: the summary (JSON), the row errors (JSON list), and a digest of
    -- the records the plan was made against (a commit re-plans and compares it).
    summary TEXT NOT NULL,
    errors TEXT NOT NULL,
    error_count INTEGER NOT NULL,
    basis TEXT NOT NULL,
    committed_at TIMESTAMP,
    committed_by TEXT,
    -- What the commit did (JSON), or why it failed.
    outcome TEXT
);
CREATE INDEX imports_community_idx ON imports (community_id, created_at);
