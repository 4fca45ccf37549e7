-- The relay's tables on PostgreSQL (docs/operator-guide.md, "Several nodes").
-- Ciphertext only: bundles, snapshots, records and blob chunks are opaque bytes.

-- One row per volume: the last sequence number written and the pruned prefix. Appends
-- lock the row (SELECT ... FOR UPDATE) so sequence numbers are dense and commit in order.
CREATE TABLE volume_heads (
    volume BYTEA PRIMARY KEY,
    head BIGINT NOT NULL DEFAULT 0,
    pruned BIGINT NOT NULL DEFAULT 0
);

-- Sealed bundles by (volume, seq). Partitioning key at scale: volume.
CREATE TABLE log (
    volume BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    bundle BYTEA NOT NULL,
    PRIMARY KEY (volume, seq)
);

CREATE TABLE snapshots (
    volume BYTEA PRIMARY KEY,
    upto BIGINT NOT NULL,
    snapshot BYTEA NOT NULL
);

-- Membership, devices, revocations, envelopes, directory, history, ... by kind and key.
CREATE TABLE records (
    kind SMALLINT NOT NULL,
    key BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Document blobs when they are not in an object store: chunks, then the committed count.
CREATE TABLE blob_chunks (
    blob BYTEA NOT NULL,
    idx INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (blob, idx)
);

CREATE TABLE blobs (
    blob BYTEA PRIMARY KEY,
    chunks INTEGER NOT NULL
);
