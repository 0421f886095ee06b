-- Projector schema: the ledger materialized into PostgreSQL (see projector/README.md).
-- Users' SQL depends on these table and column names: only add, never rename.

-- u128 counters and i128 balance/available: numeric(39,0) holds every value
-- the ledger can hold (u128::MAX has 39 digits; |i128| <= 1.7e38).
CREATE TABLE accounts (
    id              text PRIMARY KEY,
    -- Filled by the account_created event; NULL until it is projected (the
    -- account's transfer events can arrive first from other partitions).
    currency        text,
    allow_overdraft boolean,
    metadata        jsonb,
    created_index   bigint,
    created_at      timestamptz,
    -- Balance state of the event with the greatest `version` seen so far.
    debits_posted   numeric(39,0) NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  numeric(39,0) NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  numeric(39,0) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending numeric(39,0) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    balance         numeric(39,0) NOT NULL DEFAULT 0,
    available       numeric(39,0) NOT NULL DEFAULT 0,
    updated_index   bigint NOT NULL DEFAULT 0,
    -- Per-account change counter (0 = no balance change projected yet).
    version         bigint NOT NULL DEFAULT 0
);

CREATE TABLE transfers (
    id                text PRIMARY KEY,
    debit_account_id  text NOT NULL,
    credit_account_id text NOT NULL,
    -- As created (the reserved amount for a pending transfer); <= 2^63-1.
    amount            bigint NOT NULL,
    currency          text NOT NULL,
    pending           boolean NOT NULL,
    status            text NOT NULL CHECK (status IN ('posted', 'pending', 'voided', 'expired')),
    -- Amount moved: amount for a transfer posted at creation, the posted
    -- amount for a posted pending transfer, 0 for voided/expired, NULL while pending.
    posted_amount     bigint,
    metadata          jsonb NOT NULL,
    expires_at        timestamptz,
    -- Creation (from the `created` event; NULL if only a later event of the
    -- transfer has been projected so far).
    log_index         bigint,
    created_at        timestamptz,
    -- Resolution of a pending transfer (post/void/expiry).
    resolved_index    bigint,
    resolved_at       timestamptz,
    resolved_amount   bigint,
    -- Last event applied: (updated_index, updated_rank) only moves forward;
    -- rank 0 = created, 1 = posted/voided/expired.
    updated_index     bigint NOT NULL,
    updated_rank      smallint NOT NULL
);

CREATE INDEX transfers_debit_account_idx ON transfers (debit_account_id);
CREATE INDEX transfers_credit_account_idx ON transfers (credit_account_id);

-- Where each (group, topic, partition) resumes; written in the same
-- transaction as the rows, under a generation fence.
CREATE TABLE projector_offsets (
    group_name  text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    generation  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, topic, partition)
);
