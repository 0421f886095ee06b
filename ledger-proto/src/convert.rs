//! Conversions between ledger-core types and the `ledger.v1` protobuf messages; the
//! consumer-group ones (group-core types) are in [`groups`].
//!
//! Encoding (documented in `proto/ledger.proto`): u128/i128 counters are decimal strings; result
//! codes, transfer statuses and event kinds are ledger-core's stable snake_case strings.
//!
//! `*_to_proto` never fails; `*_from_proto` checks everything a peer could get wrong (a missing
//! required message, an unknown code, a malformed number) and returns a [`ConvertError`].

use std::sync::Arc;

use ledger_core::{
    AccountResult, AccountView, Balances, BatchFailure, BatchResult, Command, Decision, ExpireResult, HistoryEntry,
    HistoryFrom, HistoryPage, NewAccount, NewTransfer, Outcome, ResultCode, TransferEventKind, TransferFlags,
    TransferResult, TransferStatus, TransferView,
};

use crate::ledger as pb;

/// A protobuf message that does not map to a ledger-core value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A required field (oneof or message) is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A result code string that `ResultCode::parse` does not know.
    #[error("unknown result code `{0}`")]
    UnknownCode(String),
    /// A transfer status string that is not one of the four statuses.
    #[error("unknown transfer status `{0}`")]
    UnknownStatus(String),
    /// An event kind string that is not one of the four kinds.
    #[error("unknown transfer event kind `{0}`")]
    UnknownKind(String),
    /// An `auto_offset_reset` that is neither `earliest` nor `latest` (nor empty).
    #[error("auto_offset_reset must be \"earliest\" or \"latest\", got {0:?}")]
    UnknownOffsetReset(String),
    /// A decimal string that does not parse as the expected integer type.
    #[error("field `{field}`: `{value}` is not a valid decimal integer")]
    BadNumber {
        /// The field.
        field: &'static str,
        /// The offending text.
        value: String,
    },
}

type Result<T> = std::result::Result<T, ConvertError>;

pub mod groups;

// ---------------------------------------------------------------------------------------------
// scalars
// ---------------------------------------------------------------------------------------------

/// Parses a result code string.
pub fn code_from_str(s: &str) -> Result<ResultCode> {
    ResultCode::parse(s).ok_or_else(|| ConvertError::UnknownCode(s.to_owned()))
}

/// Parses a transfer status string (`TransferStatus::as_str`).
pub fn status_from_str(s: &str) -> Result<TransferStatus> {
    Ok(match s {
        "pending" => TransferStatus::Pending,
        "posted" => TransferStatus::Posted,
        "voided" => TransferStatus::Voided,
        "expired" => TransferStatus::Expired,
        _ => return Err(ConvertError::UnknownStatus(s.to_owned())),
    })
}

/// Parses a transfer event kind string (`TransferEventKind::as_str`).
pub fn kind_from_str(s: &str) -> Result<TransferEventKind> {
    Ok(match s {
        "created" => TransferEventKind::Created,
        "posted" => TransferEventKind::Posted,
        "voided" => TransferEventKind::Voided,
        "expired" => TransferEventKind::Expired,
        _ => return Err(ConvertError::UnknownKind(s.to_owned())),
    })
}

fn is_canonical_decimal(s: &str, signed: bool) -> bool {
    let digits = if signed { s.strip_prefix('-').unwrap_or(s) } else { s };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(digits == "0" && s.starts_with('-'))
}

fn u128_from(field: &'static str, s: &str) -> Result<u128> {
    let bad = || ConvertError::BadNumber { field, value: s.to_owned() };
    if !is_canonical_decimal(s, false) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

fn i128_from(field: &'static str, s: &str) -> Result<i128> {
    let bad = || ConvertError::BadNumber { field, value: s.to_owned() };
    if !is_canonical_decimal(s, true) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

// ---------------------------------------------------------------------------------------------
// commands
// ---------------------------------------------------------------------------------------------

/// `NewAccount` → protobuf.
pub fn new_account_to_proto(a: &NewAccount) -> pb::NewAccount {
    pb::NewAccount {
        id: a.id.clone(),
        currency: a.currency.clone(),
        allow_overdraft: a.allow_overdraft,
        metadata: a.metadata.clone(),
        credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
    }
}

/// Protobuf → `NewAccount`.
pub fn new_account_from_proto(a: pb::NewAccount) -> NewAccount {
    NewAccount {
        id: a.id,
        currency: a.currency,
        allow_overdraft: a.allow_overdraft,
        credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
        metadata: a.metadata,
    }
}

/// `TransferFlags` → protobuf (absent when none is set).
pub fn transfer_flags_to_proto(f: TransferFlags) -> Option<pb::TransferFlags> {
    (f != TransferFlags::NONE).then_some(pb::TransferFlags {
        balancing_debit: f.balancing_debit,
        balancing_credit: f.balancing_credit,
        closing_debit: f.closing_debit,
        closing_credit: f.closing_credit,
    })
}

/// Protobuf → `TransferFlags` (absent: none).
pub fn transfer_flags_from_proto(f: Option<pb::TransferFlags>) -> TransferFlags {
    f.map_or(TransferFlags::NONE, |f| TransferFlags {
        balancing_debit: f.balancing_debit,
        balancing_credit: f.balancing_credit,
        closing_debit: f.closing_debit,
        closing_credit: f.closing_credit,
    })
}

/// `NewTransfer` → protobuf.
pub fn new_transfer_to_proto(t: &NewTransfer) -> pb::NewTransfer {
    pb::NewTransfer {
        id: t.id.clone(),
        debit_account_id: t.debit_account_id.clone(),
        credit_account_id: t.credit_account_id.clone(),
        amount: t.amount,
        currency: t.currency.clone(),
        metadata: t.metadata.clone(),
        pending: t.pending,
        timeout_ms: t.timeout_ms,
        flags: transfer_flags_to_proto(t.flags),
    }
}

/// Protobuf → `NewTransfer`.
pub fn new_transfer_from_proto(t: pb::NewTransfer) -> NewTransfer {
    NewTransfer {
        id: t.id,
        debit_account_id: t.debit_account_id,
        credit_account_id: t.credit_account_id,
        amount: t.amount,
        currency: t.currency,
        metadata: t.metadata,
        pending: t.pending,
        timeout_ms: t.timeout_ms,
        flags: transfer_flags_from_proto(t.flags),
    }
}

/// `Command` → `SubmitRequest` (every variant, `ExpirePending` included although `Submit`
/// refuses it).
pub fn command_to_proto(c: &Command) -> pb::SubmitRequest {
    use pb::submit_request::Command as C;
    let command = match c {
        Command::CreateAccount(a) => C::CreateAccount(new_account_to_proto(a)),
        Command::CreateTransfer(t) => C::CreateTransfer(new_transfer_to_proto(t)),
        Command::CreateTransfers { transfers, atomic } => C::CreateTransfers(pb::CreateTransfers {
            transfers: transfers.iter().map(new_transfer_to_proto).collect(),
            atomic: *atomic,
        }),
        Command::PostPending { pending_id, amount } => {
            C::PostPending(pb::PostPending { pending_id: pending_id.clone(), amount: *amount })
        }
        Command::VoidPending { pending_id } => C::VoidPending(pb::VoidPending { pending_id: pending_id.clone() }),
        Command::ExpirePending { now_ms } => C::ExpirePending(pb::ExpirePending { now_ms: *now_ms }),
    };
    pb::SubmitRequest { command: Some(command) }
}

/// `SubmitRequest` → `Command`.
pub fn command_from_proto(r: pb::SubmitRequest) -> Result<Command> {
    use pb::submit_request::Command as C;
    Ok(match r.command.ok_or(ConvertError::Missing("command"))? {
        C::CreateAccount(a) => Command::CreateAccount(new_account_from_proto(a)),
        C::CreateTransfer(t) => Command::CreateTransfer(new_transfer_from_proto(t)),
        C::CreateTransfers(b) => Command::CreateTransfers {
            transfers: b.transfers.into_iter().map(new_transfer_from_proto).collect(),
            atomic: b.atomic,
        },
        C::PostPending(p) => Command::PostPending { pending_id: p.pending_id, amount: p.amount },
        C::VoidPending(v) => Command::VoidPending { pending_id: v.pending_id },
        C::ExpirePending(e) => Command::ExpirePending { now_ms: e.now_ms },
    })
}

// ---------------------------------------------------------------------------------------------
// outcomes
// ---------------------------------------------------------------------------------------------

/// `Decision` → protobuf.
pub fn decision_to_proto(d: &Decision) -> pb::Decision {
    pb::Decision {
        status: d.status.as_str().to_owned(),
        index: d.index,
        timestamp_ms: d.timestamp_ms,
        amount: d.amount,
    }
}

/// Protobuf → `Decision`.
pub fn decision_from_proto(d: pb::Decision) -> Result<Decision> {
    Ok(Decision { status: status_from_str(&d.status)?, index: d.index, timestamp_ms: d.timestamp_ms, amount: d.amount })
}

/// `TransferResult` → protobuf.
pub fn transfer_result_to_proto(r: &TransferResult) -> pb::TransferResult {
    pb::TransferResult { code: r.code.as_str().to_owned(), decision: r.decision.as_ref().map(decision_to_proto) }
}

/// Protobuf → `TransferResult`.
pub fn transfer_result_from_proto(r: pb::TransferResult) -> Result<TransferResult> {
    Ok(TransferResult { code: code_from_str(&r.code)?, decision: r.decision.map(decision_from_proto).transpose()? })
}

/// `Outcome` → protobuf.
pub fn outcome_to_proto(o: &Outcome) -> pb::LedgerOutcome {
    use pb::ledger_outcome::Result as R;
    let result = match o {
        Outcome::Account(a) => R::Account(pb::AccountResult {
            code: a.code.as_str().to_owned(),
            created: a.created.map(|(index, timestamp_ms)| pb::LogPoint { index, timestamp_ms }),
        }),
        Outcome::Transfer(t) => R::Transfer(transfer_result_to_proto(t)),
        Outcome::Batch(b) => R::Batch(pb::BatchResult {
            code: b.code.as_str().to_owned(),
            results: b.results.iter().map(transfer_result_to_proto).collect(),
            failed: b.failed.map(|f| pb::BatchFailure { item: f.item, code: f.code.as_str().to_owned() }),
        }),
        Outcome::Expire(e) => R::Expire(pb::ExpireResult { expired: e.expired, more_due: e.more_due }),
    };
    pb::LedgerOutcome { result: Some(result) }
}

/// Protobuf → `Outcome`.
pub fn outcome_from_proto(o: pb::LedgerOutcome) -> Result<Outcome> {
    use pb::ledger_outcome::Result as R;
    Ok(match o.result.ok_or(ConvertError::Missing("result"))? {
        R::Account(a) => Outcome::Account(AccountResult {
            code: code_from_str(&a.code)?,
            created: a.created.map(|p| (p.index, p.timestamp_ms)),
        }),
        R::Transfer(t) => Outcome::Transfer(transfer_result_from_proto(t)?),
        R::Batch(b) => Outcome::Batch(BatchResult {
            code: code_from_str(&b.code)?,
            results: b.results.into_iter().map(transfer_result_from_proto).collect::<Result<_>>()?,
            failed: b
                .failed
                .map(|f| Ok::<_, ConvertError>(BatchFailure { item: f.item, code: code_from_str(&f.code)? }))
                .transpose()?,
        }),
        R::Expire(e) => Outcome::Expire(ExpireResult { expired: e.expired, more_due: e.more_due }),
    })
}

// ---------------------------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------------------------

/// `Balances` → protobuf (decimal strings).
pub fn balances_to_proto(b: &Balances) -> pb::Balances {
    pb::Balances {
        debits_posted: b.debits_posted.to_string(),
        credits_posted: b.credits_posted.to_string(),
        debits_pending: b.debits_pending.to_string(),
        credits_pending: b.credits_pending.to_string(),
    }
}

/// Protobuf → `Balances`.
pub fn balances_from_proto(b: &pb::Balances) -> Result<Balances> {
    Ok(Balances {
        debits_posted: u128_from("debits_posted", &b.debits_posted)?,
        credits_posted: u128_from("credits_posted", &b.credits_posted)?,
        debits_pending: u128_from("debits_pending", &b.debits_pending)?,
        credits_pending: u128_from("credits_pending", &b.credits_pending)?,
    })
}

/// `AccountView` → protobuf.
pub fn account_to_proto(a: &AccountView) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        currency: a.currency.to_string(),
        allow_overdraft: a.allow_overdraft,
        metadata: a.metadata.to_string(),
        created_index: a.created_index,
        created_timestamp_ms: a.created_timestamp_ms,
        balances: Some(balances_to_proto(&a.balances)),
        balance: a.balance.to_string(),
        available: a.available.to_string(),
        index: a.index,
        version: a.version,
        credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
        closed: a.closed,
    }
}

/// Protobuf → `AccountView`.
pub fn account_from_proto(a: pb::Account) -> Result<AccountView> {
    Ok(AccountView {
        balances: balances_from_proto(a.balances.as_ref().ok_or(ConvertError::Missing("balances"))?)?,
        balance: i128_from("balance", &a.balance)?,
        available: i128_from("available", &a.available)?,
        id: Arc::from(a.id),
        currency: Arc::from(a.currency),
        allow_overdraft: a.allow_overdraft,
        credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
        closed: a.closed,
        metadata: Arc::from(a.metadata),
        created_index: a.created_index,
        created_timestamp_ms: a.created_timestamp_ms,
        index: a.index,
        version: a.version,
    })
}

/// `TransferView` → protobuf.
pub fn transfer_to_proto(t: &TransferView) -> pb::Transfer {
    pb::Transfer {
        id: t.id.to_string(),
        debit_account_id: t.debit_account_id.to_string(),
        credit_account_id: t.credit_account_id.to_string(),
        amount: t.amount,
        currency: t.currency.to_string(),
        metadata: t.metadata.to_string(),
        pending: t.pending,
        timeout_ms: t.timeout_ms,
        expires_at_ms: t.expires_at_ms,
        status: t.status.as_str().to_owned(),
        created: Some(decision_to_proto(&t.created)),
        resolution: t.resolution.as_ref().map(decision_to_proto),
        flags: transfer_flags_to_proto(t.flags),
    }
}

/// Protobuf → `TransferView`.
pub fn transfer_from_proto(t: pb::Transfer) -> Result<TransferView> {
    Ok(TransferView {
        status: status_from_str(&t.status)?,
        created: decision_from_proto(t.created.ok_or(ConvertError::Missing("created"))?)?,
        resolution: t.resolution.map(decision_from_proto).transpose()?,
        id: Arc::from(t.id),
        debit_account_id: Arc::from(t.debit_account_id),
        credit_account_id: Arc::from(t.credit_account_id),
        amount: t.amount,
        currency: Arc::from(t.currency),
        metadata: Arc::from(t.metadata),
        pending: t.pending,
        flags: transfer_flags_from_proto(t.flags),
        timeout_ms: t.timeout_ms,
        expires_at_ms: t.expires_at_ms,
    })
}

/// `HistoryFrom` → the request's `from` oneof.
pub fn history_from_to_proto(f: HistoryFrom) -> pb::account_transfers_request::From {
    use pb::account_transfers_request::From as F;
    match f {
        HistoryFrom::Start => F::Start(pb::HistoryStart {}),
        HistoryFrom::AfterVersion(v) => F::AfterVersion(v),
        HistoryFrom::AfterIndex(i) => F::AfterIndex(i),
    }
}

/// The request's `from` oneof → `HistoryFrom` (absent = start).
pub fn history_from_from_proto(f: Option<pb::account_transfers_request::From>) -> HistoryFrom {
    use pb::account_transfers_request::From as F;
    match f {
        None | Some(F::Start(_)) => HistoryFrom::Start,
        Some(F::AfterVersion(v)) => HistoryFrom::AfterVersion(v),
        Some(F::AfterIndex(i)) => HistoryFrom::AfterIndex(i),
    }
}

/// `HistoryPage` → protobuf.
pub fn history_page_to_proto(p: &HistoryPage) -> pb::HistoryPage {
    pb::HistoryPage {
        entries: p
            .entries
            .iter()
            .map(|e| pb::HistoryEntry {
                version: e.version,
                index: e.index,
                timestamp_ms: e.timestamp_ms,
                transfer_id: e.transfer_id.to_string(),
                kind: e.kind.as_str().to_owned(),
                balances: Some(balances_to_proto(&e.balances)),
            })
            .collect(),
        next: p.next,
    }
}

/// Protobuf → `HistoryPage`.
pub fn history_page_from_proto(p: pb::HistoryPage) -> Result<HistoryPage> {
    Ok(HistoryPage {
        entries: p
            .entries
            .into_iter()
            .map(|e| {
                Ok(HistoryEntry {
                    version: e.version,
                    index: e.index,
                    timestamp_ms: e.timestamp_ms,
                    kind: kind_from_str(&e.kind)?,
                    balances: balances_from_proto(e.balances.as_ref().ok_or(ConvertError::Missing("balances"))?)?,
                    transfer_id: Arc::from(e.transfer_id),
                })
            })
            .collect::<Result<_>>()?,
        next: p.next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(id: &str, pending: bool) -> NewTransfer {
        NewTransfer {
            flags: TransferFlags { balancing_credit: true, closing_debit: pending, ..TransferFlags::NONE },
            id: id.into(),
            debit_account_id: "a".into(),
            credit_account_id: "b".into(),
            amount: u64::MAX,
            currency: "USD".into(),
            metadata: r#"{"k":1}"#.into(),
            pending,
            timeout_ms: pending.then_some(5_000),
        }
    }

    fn dec(status: TransferStatus) -> Decision {
        Decision { status, index: 7, timestamp_ms: 1_700_000_000_000, amount: 42 }
    }

    #[test]
    fn every_command_variant_round_trips() {
        let commands = [
            Command::CreateAccount(NewAccount {
                credits_must_not_exceed_debits: true,
                id: "acct-1".into(),
                currency: "EUR".into(),
                allow_overdraft: true,
                metadata: "{}".into(),
            }),
            Command::CreateTransfer(nt("t1", false)),
            Command::CreateTransfer(nt("t2", true)),
            Command::CreateTransfers { transfers: vec![nt("t3", false), nt("t4", true)], atomic: true },
            Command::CreateTransfers { transfers: vec![], atomic: false },
            Command::PostPending { pending_id: "t2".into(), amount: Some(10) },
            Command::PostPending { pending_id: "t2".into(), amount: None },
            Command::VoidPending { pending_id: "t4".into() },
            Command::ExpirePending { now_ms: 123 },
        ];
        for c in commands {
            let p = command_to_proto(&c);
            // Through the wire bytes as well.
            let bytes = prost::Message::encode_to_vec(&p);
            let p2: pb::SubmitRequest = prost::Message::decode(bytes.as_slice()).expect("decode");
            assert_eq!(command_from_proto(p2), Ok(c));
        }
        assert_eq!(command_from_proto(pb::SubmitRequest { command: None }), Err(ConvertError::Missing("command")));
    }

    #[test]
    fn every_outcome_variant_round_trips() {
        let outcomes = [
            Outcome::Account(AccountResult { code: ResultCode::Created, created: Some((3, 99)) }),
            Outcome::Account(AccountResult { code: ResultCode::InvalidId, created: None }),
            Outcome::Transfer(TransferResult { code: ResultCode::Exists, decision: Some(dec(TransferStatus::Posted)) }),
            Outcome::Transfer(TransferResult { code: ResultCode::InsufficientFunds, decision: None }),
            Outcome::Batch(BatchResult {
                code: ResultCode::LinkedEventFailed,
                results: vec![
                    TransferResult { code: ResultCode::LinkedEventFailed, decision: None },
                    TransferResult { code: ResultCode::SameAccount, decision: None },
                ],
                failed: Some(BatchFailure { item: 1, code: ResultCode::SameAccount }),
            }),
            Outcome::Batch(BatchResult {
                code: ResultCode::Created,
                results: vec![TransferResult {
                    code: ResultCode::Created,
                    decision: Some(dec(TransferStatus::Pending)),
                }],
                failed: None,
            }),
            Outcome::Expire(ExpireResult { expired: 3, more_due: true }),
        ];
        for o in outcomes {
            let p = outcome_to_proto(&o);
            let bytes = prost::Message::encode_to_vec(&p);
            let p2: pb::LedgerOutcome = prost::Message::decode(bytes.as_slice()).expect("decode");
            assert_eq!(outcome_from_proto(p2), Ok(o));
        }
    }

    #[test]
    fn every_code_status_and_kind_round_trips() {
        for &c in ResultCode::ALL {
            assert_eq!(code_from_str(c.as_str()), Ok(c));
        }
        for s in [TransferStatus::Pending, TransferStatus::Posted, TransferStatus::Voided, TransferStatus::Expired] {
            assert_eq!(status_from_str(s.as_str()), Ok(s));
        }
        for k in [
            TransferEventKind::Created,
            TransferEventKind::Posted,
            TransferEventKind::Voided,
            TransferEventKind::Expired,
        ] {
            assert_eq!(kind_from_str(k.as_str()), Ok(k));
        }
        assert!(matches!(code_from_str("nope"), Err(ConvertError::UnknownCode(_))));
        assert!(status_from_str("Posted").is_err());
        assert!(kind_from_str("").is_err());
    }

    #[test]
    fn views_round_trip_with_extreme_counters() {
        let balances = Balances {
            debits_posted: u128::MAX,
            credits_posted: 0,
            debits_pending: i128::MAX as u128,
            credits_pending: 1,
        };
        let a = AccountView {
            id: "x".into(),
            currency: "USD".into(),
            allow_overdraft: false,
            credits_must_not_exceed_debits: true,
            closed: true,
            metadata: "{}".into(),
            created_index: 1,
            created_timestamp_ms: 2,
            balances,
            balance: i128::MIN,
            available: -5,
            index: 9,
            version: 4,
        };
        assert_eq!(account_from_proto(account_to_proto(&a)), Ok(a));
        let t = TransferView {
            id: "t".into(),
            debit_account_id: "a".into(),
            credit_account_id: "b".into(),
            amount: 5,
            currency: "USD".into(),
            metadata: "{}".into(),
            pending: true,
            flags: TransferFlags { balancing_debit: true, closing_credit: true, ..TransferFlags::NONE },
            timeout_ms: Some(10),
            expires_at_ms: Some(20),
            status: TransferStatus::Voided,
            created: dec(TransferStatus::Pending),
            resolution: Some(dec(TransferStatus::Voided)),
        };
        assert_eq!(transfer_from_proto(transfer_to_proto(&t)), Ok(t));
        let page = HistoryPage {
            entries: vec![HistoryEntry {
                version: 1,
                index: 3,
                timestamp_ms: 4,
                transfer_id: "t".into(),
                kind: TransferEventKind::Expired,
                balances,
            }],
            next: Some(1),
        };
        assert_eq!(history_page_from_proto(history_page_to_proto(&page)), Ok(page));
        for f in [HistoryFrom::Start, HistoryFrom::AfterVersion(3), HistoryFrom::AfterIndex(9)] {
            assert_eq!(history_from_from_proto(Some(history_from_to_proto(f))), f);
        }
        assert_eq!(history_from_from_proto(None), HistoryFrom::Start);
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        for bad in ["", "-1", "+1", "01", " 1", "1a", "340282366920938463463374607431768211456"] {
            assert!(u128_from("f", bad).is_err(), "{bad:?}");
        }
        for bad in ["", "-", "-0", "--1", "007", "170141183460469231731687303715884105728"] {
            assert!(i128_from("f", bad).is_err(), "{bad:?}");
        }
        assert_eq!(i128_from("f", "-170141183460469231731687303715884105728"), Ok(i128::MIN));
        assert_eq!(u128_from("f", "0"), Ok(0));
    }
}
