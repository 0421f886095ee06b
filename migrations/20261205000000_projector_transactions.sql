-- Transactions (issue 17): the postings of transaction T are the transfers `T:<n>` whose
-- metadata holds {"transaction": "T", "posting": n} (posting 0 also {"postings": count,
-- "metadata": {...}}), written by the gateway; see docs/LEDGER_RULES.md. They are projected as
-- transfers, exactly once like any transfer; these columns and the view derive the transaction
-- from those rows, so there is nothing else to fill and nothing to fill twice.

-- The transaction a transfer is a posting of, and its number; NULL for any other transfer
-- (including one whose metadata merely looks similar but whose id is not `T:<n>`).
ALTER TABLE transfers ADD COLUMN transaction_id text GENERATED ALWAYS AS (
    CASE WHEN jsonb_typeof(metadata -> 'transaction') = 'string'
              AND jsonb_typeof(metadata -> 'posting') = 'number'
              AND metadata ->> 'posting' ~ '^[0-9]{1,3}$'
              AND id = (metadata ->> 'transaction') || ':' || (metadata ->> 'posting')
         THEN metadata ->> 'transaction' END
) STORED;

ALTER TABLE transfers ADD COLUMN posting int GENERATED ALWAYS AS (
    CASE WHEN jsonb_typeof(metadata -> 'transaction') = 'string'
              AND jsonb_typeof(metadata -> 'posting') = 'number'
              AND metadata ->> 'posting' ~ '^[0-9]{1,3}$'
              AND id = (metadata ->> 'transaction') || ':' || (metadata ->> 'posting')
         THEN (metadata ->> 'posting')::int END
) STORED;

CREATE INDEX transfers_transaction_idx ON transfers (transaction_id) WHERE transaction_id IS NOT NULL;

-- One row per transaction with at least one posting projected. `postings` (from posting 0) is
-- NULL until posting 0 is projected; `postings_projected` equals it once every posting is
-- (`projector verify` checks this for every transaction up to the log index it reads at).
CREATE VIEW transactions AS
SELECT transaction_id AS id,
       max(CASE WHEN metadata ->> 'postings' ~ '^[0-9]{1,3}$' THEN (metadata ->> 'postings')::int END)
           FILTER (WHERE posting = 0) AS postings,
       count(*) AS postings_projected,
       (array_agg(metadata -> 'metadata') FILTER (WHERE posting = 0))[1] AS metadata,
       min(log_index) AS log_index,
       min(created_at) AS created_at
FROM transfers
WHERE transaction_id IS NOT NULL
GROUP BY transaction_id;
