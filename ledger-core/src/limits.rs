//! Every limit of the ledger, as named constants.
//!
//! The relations between them are checked at compile time at the bottom of
//! this module, so changing one number cannot silently break another rule.

/// Minimum length of an account or transfer id, in bytes.
pub const ID_BYTES_MIN: usize = 1;

/// Maximum length of an account or transfer id, in bytes (ids are ASCII
/// `[A-Za-z0-9._:-]`, so bytes == characters).
pub const ID_BYTES_MAX: usize = 128;

/// Minimum length of a currency code (uppercase ASCII letters).
pub const CURRENCY_LEN_MIN: usize = 3;

/// Maximum length of a currency code (uppercase ASCII letters).
pub const CURRENCY_LEN_MAX: usize = 12;

/// Maximum size of the opaque metadata text of an account or transfer, in
/// bytes. The gateway validates and canonicalizes the JSON; the core only
/// stores the bytes and compares them for idempotency.
pub const METADATA_BYTES_MAX: usize = 4096;

/// Smallest transfer amount (integer minor units).
pub const AMOUNT_MIN: u64 = 1;

/// Largest transfer amount: 2^63 − 1, so amounts survive a signed 64-bit
/// column or a JSON number in languages without unsigned integers.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// Ceiling for each side of an account: `debits_posted + debits_pending`
/// and `credits_posted + credits_pending` must each stay `<= BALANCE_MAX`
/// (= `i128::MAX`). This guarantees the derived `balance` and `available`
/// (both `credits_posted − something <= BALANCE_MAX`) always fit in `i128`.
/// A transfer that would cross it is rejected with `overflow`.
pub const BALANCE_MAX: u128 = i128::MAX as u128;

/// Maximum number of transfers in one `CreateTransfers` command (one log
/// entry). Larger batches are rejected whole with `batch_too_large`.
pub const BATCH_TRANSFERS_MAX: usize = 8190;

/// Maximum number of entries returned by one `account_transfers` page.
pub const HISTORY_PAGE_MAX: usize = 1000;

/// Maximum number of accounts returned by one [`Ledger::scan_accounts`] page.
///
/// [`Ledger::scan_accounts`]: crate::Ledger::scan_accounts
pub const ACCOUNT_PAGE_MAX: usize = 1000;

/// Maximum number of accounts one [`Ledger::scan_accounts`] call looks at (a page of a sparse
/// filter may end before it is full, with a cursor to go on from): bounds the time a query holds
/// the state.
///
/// [`Ledger::scan_accounts`]: crate::Ledger::scan_accounts
pub const ACCOUNT_SCAN_MAX: usize = 4096;

/// Maximum number of transfers returned by one [`Ledger::scan_transfers`] page.
///
/// [`Ledger::scan_transfers`]: crate::Ledger::scan_transfers
pub const TRANSFER_PAGE_MAX: usize = 1000;

/// Maximum number of transfers (or, for one account, history records) one
/// [`Ledger::scan_transfers`] call looks at: bounds the time a query holds the state, like
/// [`ACCOUNT_SCAN_MAX`].
///
/// [`Ledger::scan_transfers`]: crate::Ledger::scan_transfers
pub const TRANSFER_SCAN_MAX: usize = 4096;

/// Largest `timeout_ms` of a pending transfer: 30 days.
pub const TIMEOUT_MS_MAX: u64 = 30 * 24 * 60 * 60 * 1000;

/// Maximum number of pending transfers expired while applying one log
/// entry (bounds the latency of a single apply). Remaining due transfers
/// are expired by the next entries; `Ledger::next_expiry_ms` tells the
/// leader that more are due. A post/void of a due transfer always sees it
/// as expired, whether or not the bulk expiry has reached it yet.
pub const EXPIRE_PER_ENTRY_MAX: usize = 8190;

/// Maximum number of accounts (internal account handles are `u32`).
/// Creating more is rejected with `limit_exceeded`.
pub const ACCOUNTS_MAX: usize = 100_000_000;

/// Maximum number of distinct currencies (internal handles are `u16`).
/// An account with a new currency beyond it is rejected with
/// `limit_exceeded`.
pub const CURRENCIES_MAX: usize = 4096;

/// Maximum number of stored transfers (internal handles are `u32`).
/// Creating more is rejected with `limit_exceeded`.
pub const TRANSFERS_MAX: usize = u32::MAX as usize - 1;

// ---- compile-time relation checks -------------------------------------

const _: () = assert!(ID_BYTES_MIN >= 1 && ID_BYTES_MIN <= ID_BYTES_MAX);
const _: () = assert!(CURRENCY_LEN_MIN >= 1 && CURRENCY_LEN_MIN <= CURRENCY_LEN_MAX);
const _: () = assert!(AMOUNT_MIN >= 1 && AMOUNT_MIN <= AMOUNT_MAX);
const _: () = assert!(AMOUNT_MAX <= i64::MAX as u64);
// One transfer can never by itself exceed the balance ceiling.
const _: () = assert!((AMOUNT_MAX as u128) < BALANCE_MAX);
// A full batch of maximal transfers still fits far below the ceiling of u128
// arithmetic used for the checks (no intermediate sum can wrap).
const _: () = assert!(BALANCE_MAX.checked_add(AMOUNT_MAX as u128).is_some());
const _: () = assert!(BALANCE_MAX <= i128::MAX as u128);
const _: () = assert!(BATCH_TRANSFERS_MAX >= 1 && BATCH_TRANSFERS_MAX <= u32::MAX as usize);
const _: () = assert!(EXPIRE_PER_ENTRY_MAX >= 1);
const _: () = assert!(HISTORY_PAGE_MAX >= 1);
const _: () = assert!(TIMEOUT_MS_MAX >= 1);
const _: () = assert!(ACCOUNTS_MAX <= u32::MAX as usize);
const _: () = assert!(CURRENCIES_MAX <= u16::MAX as usize + 1);
const _: () = assert!(TRANSFERS_MAX < u32::MAX as usize);
