-- Records PostgreSQL refused (issue 21): one row per ledger record the
-- projector could not store (e.g. a NUL escape that jsonb cannot hold), with
-- PostgreSQL's reason. The record's offset is still passed, in the same
-- transaction, so one bad record never stops the projection; `projector
-- verify` fails while this table has rows, and the projector's
-- `projector_dead_letters` metric counts them.
CREATE TABLE projector_dead_letters (
    group_name    text NOT NULL,
    topic         text NOT NULL,
    partition     int NOT NULL,
    record_offset bigint NOT NULL CHECK (record_offset >= 0),
    -- `account_created` or `transfer`, and the account or transfer id.
    kind          text NOT NULL,
    entity_id     text NOT NULL,
    -- PostgreSQL's SQLSTATE and message (or the projector's, for a value that
    -- does not fit a column before it is sent).
    sqlstate      text NOT NULL,
    reason        text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, topic, partition, record_offset)
);
