-- The hub's enrolment tables on PostgreSQL (docs/enrolment.md, relay/src/enrolment_pg.rs).
-- People are rows by place (page * 32 + slot, given at import, never changed), the NIR
-- unique. The campaign queue, the due index, the outbox, identifiers and metadata are
-- the same ordered keys as on sled (relay/src/enrolment_store.rs): bytea compares byte
-- by byte, as sled's keys do. Partitioning key at scale: loc for people, key otherwise.
CREATE TABLE enrol_people (
    loc BIGINT PRIMARY KEY,
    nir TEXT NOT NULL UNIQUE,
    import BIGINT NOT NULL,
    record BYTEA NOT NULL
);

CREATE TABLE enrol_kv (
    key BYTEA PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE SEQUENCE enrol_seq;
