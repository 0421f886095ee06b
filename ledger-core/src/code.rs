//! Result codes: every decision of the ledger is one of these, never a panic.

use serde::{Deserialize, Serialize};

macro_rules! result_codes {
    ($( $(#[$doc:meta])* $variant:ident => $s:literal, )*) => {
        /// The result of one command or one batch item (rule 8).
        ///
        /// Each code has a stable snake_case string (`as_str`) that the HTTP
        /// gateway exposes; never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ResultCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ResultCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ResultCode] = &[ $( ResultCode::$variant, )* ];

            /// The stable snake_case string of this code.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ResultCode::$variant => $s, )*
                }
            }

            /// Parses the string produced by [`ResultCode::as_str`].
            pub fn parse(s: &str) -> Option<ResultCode> {
                match s {
                    $( $s => Some(ResultCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

result_codes! {
    /// The account or transfer was created by this command.
    Created => "created",
    /// Replay: the same id with an identical body (or the same post/void
    /// request) was already applied; the original result is returned and
    /// nothing changed.
    Exists => "exists",
    /// A pending transfer was posted by this command.
    Posted => "posted",
    /// A pending transfer was voided by this command.
    Voided => "voided",
    /// The id is already used with a different body.
    IdConflict => "id_conflict",
    /// An id is empty, too long or has a character outside `[A-Za-z0-9._:-]`.
    InvalidId => "invalid_id",
    /// The currency is not 3–12 uppercase ASCII letters.
    InvalidCurrency => "invalid_currency",
    /// The amount is 0 or above `AMOUNT_MAX`.
    InvalidAmount => "invalid_amount",
    /// `timeout_ms` is 0, above `TIMEOUT_MS_MAX`, or given on a non-pending transfer.
    InvalidTimeout => "invalid_timeout",
    /// Metadata is larger than `METADATA_BYTES_MAX`.
    MetadataTooLarge => "metadata_too_large",
    /// The debit or credit account does not exist.
    AccountNotFound => "account_not_found",
    /// Debit and credit account are the same.
    SameAccount => "same_account",
    /// An account does not have the transfer's currency.
    CurrencyMismatch => "currency_mismatch",
    /// The debit would take a non-overdraft account below zero available.
    InsufficientFunds => "insufficient_funds",
    /// A balance would cross `BALANCE_MAX` (or a deadline would overflow u64).
    Overflow => "overflow",
    /// A capacity limit (accounts, currencies, transfers) is reached.
    LimitExceeded => "limit_exceeded",
    /// The batch has more than `BATCH_TRANSFERS_MAX` transfers.
    BatchTooLarge => "batch_too_large",
    /// Atomic batch: this item was not applied because another item failed.
    LinkedEventFailed => "linked_event_failed",
    /// Post/void: no transfer with this id.
    TransferNotFound => "transfer_not_found",
    /// Post/void: the transfer is not a pending transfer.
    NotPending => "not_pending",
    /// Post/void: the pending transfer was already posted (with another
    /// amount, or a void was asked).
    AlreadyPosted => "already_posted",
    /// Post: the pending transfer was already voided.
    AlreadyVoided => "already_voided",
    /// Post/void: the pending transfer expired.
    PendingExpired => "pending_expired",
    /// Post: the amount is larger than the pending amount.
    AmountExceedsPending => "amount_exceeds_pending",
    /// A string holds a NUL, a lone surrogate or a control character where
    /// none is allowed (`check_text`, `check_json_text`).
    InvalidText => "invalid_text",
    /// Rule 10: the credit would take an account with
    /// `credits_must_not_exceed_debits` past its debits.
    ExceedsDebits => "exceeds_debits",
    /// Rule 10: `credits_must_not_exceed_debits` without `allow_overdraft`
    /// (an account limited on both sides could never move).
    FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
    /// Rule 11: a closing transfer must be pending (so that a void can reopen
    /// the account).
    ClosingTransferMustBePending => "closing_transfer_must_be_pending",
    /// Rule 11: the debit account is closed.
    DebitAccountClosed => "debit_account_closed",
    /// Rule 11: the credit account is closed.
    CreditAccountClosed => "credit_account_closed",
}

impl ResultCode {
    /// True for the codes that mean "the state is as the client asked":
    /// `created`, `exists`, `posted`, `voided`. In an atomic batch every
    /// other code makes the whole batch fail.
    pub const fn is_success(self) -> bool {
        matches!(self, ResultCode::Created | ResultCode::Exists | ResultCode::Posted | ResultCode::Voided)
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ResultCode;

    /// Rule 8: every code has a distinct snake_case string that parses back.
    #[test]
    fn rule8_codes_roundtrip_and_are_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for &c in ResultCode::ALL {
            let s = c.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert!(seen.insert(s), "duplicate {s}");
            assert_eq!(ResultCode::parse(s), Some(c));
        }
    }
}
