-- Account limit and closed flags, transfer flags (issue 17, rules 10 and 11 in
-- docs/LEDGER_RULES.md), from the `ledger` topic's events since 2026-12-05. Filled exactly once
-- like the other columns: `credits_must_not_exceed_debits` with the account's creation (NULL until
-- then, like `allow_overdraft`), `closed` with the balances (the newest `version` wins), a
-- transfer's `flags` with its row (they never change). Rows projected before this migration keep
-- the defaults; `projector verify` reports an account whose flags differ from the ledger's.
ALTER TABLE accounts ADD COLUMN credits_must_not_exceed_debits boolean;
ALTER TABLE accounts ADD COLUMN closed boolean NOT NULL DEFAULT false;
-- Of `balancing_debit`, `balancing_credit`, `closing_debit`, `closing_credit`, in that order.
ALTER TABLE transfers ADD COLUMN flags text[] NOT NULL DEFAULT '{}';
-- Accounts projected before: their creation events carried no limit flag (false then).
UPDATE accounts SET credits_must_not_exceed_debits = false WHERE created_index IS NOT NULL;
