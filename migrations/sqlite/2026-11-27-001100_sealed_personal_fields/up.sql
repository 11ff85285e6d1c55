-- Personal fields at rest (src/db/keys.rs): ID numbers and phones are stored sealed
-- (AES-256-GCM, `gl1.<key id>.<base64>`) in their own columns, and found by exact value through
-- a blind index (a keyed HMAC of the normalised value) in a column of its own. Values a v1
-- database holds in clear are sealed by `gridlight migrate` / `serve` right after this
-- migration, in batches (src/store/keys.rs).
ALTER TABLE members ADD COLUMN id_number_bidx TEXT;
ALTER TABLE members ADD COLUMN phone_bidx TEXT;
ALTER TABLE households ADD COLUMN phone_bidx TEXT;
ALTER TABLE users ADD COLUMN phone_bidx TEXT;
-- The index on the clear ID number is of no use on sealed values.
DROP INDEX members_id_number_idx;
CREATE INDEX members_id_number_bidx_idx ON members (id_number_bidx) WHERE id_number_bidx IS NOT NULL;
CREATE INDEX members_phone_bidx_idx ON members (phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE INDEX households_phone_bidx_idx ON households (phone_bidx) WHERE phone_bidx IS NOT NULL;
CREATE INDEX users_phone_bidx_idx ON users (phone_bidx) WHERE phone_bidx IS NOT NULL;

-- Every data key that has sealed values: a key that is not retired must be configured, or the
-- service refuses to start. `gridlight keys rotate` retires keys no value uses any more.
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);

-- Retention (src/jobs.rs): when the personal fields of a removed household were erased.
ALTER TABLE households ADD COLUMN erased_at TIMESTAMP;
