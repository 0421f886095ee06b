//! The log encoding of accounts and transfers stays readable across the flags of rules 10 and 11:
//! an entry written before them (a plain `bool` where the flags byte now is) reads back the same.
#![allow(missing_docs)]

use ledger_core::{NewAccount, NewTransfer, TransferFlags};
use serde::{Deserialize, Serialize};

/// `NewTransfer` as it was encoded before the flags.
#[derive(Serialize, Deserialize)]
struct OldTransfer {
    id: String,
    debit_account_id: String,
    credit_account_id: String,
    amount: u64,
    currency: String,
    metadata: String,
    pending: bool,
    timeout_ms: Option<u64>,
}

/// `NewAccount` as it was encoded before `credits_must_not_exceed_debits`.
#[derive(Serialize, Deserialize)]
struct OldAccount {
    id: String,
    currency: String,
    allow_overdraft: bool,
    metadata: String,
}

fn transfer(pending: bool, flags: TransferFlags) -> NewTransfer {
    NewTransfer {
        id: "t1".into(),
        debit_account_id: "a".into(),
        credit_account_id: "b".into(),
        amount: 7,
        currency: "USD".into(),
        metadata: "{}".into(),
        pending,
        timeout_ms: pending.then_some(60_000),
        flags,
    }
}

#[test]
fn old_entries_read_back_and_new_ones_round_trip() -> Result<(), bincode::Error> {
    for pending in [false, true] {
        let old = OldTransfer {
            id: "t1".into(),
            debit_account_id: "a".into(),
            credit_account_id: "b".into(),
            amount: 7,
            currency: "USD".into(),
            metadata: "{}".into(),
            pending,
            timeout_ms: pending.then_some(60_000),
        };
        let bytes = bincode::serialize(&old)?;
        let new: NewTransfer = bincode::deserialize(&bytes)?;
        assert_eq!(new, transfer(pending, TransferFlags::NONE));
        // And the other way: a transfer without flags is written exactly as before.
        assert_eq!(bincode::serialize(&new)?, bytes);
    }
    for overdraft in [false, true] {
        let old =
            OldAccount { id: "a".into(), currency: "USD".into(), allow_overdraft: overdraft, metadata: "".into() };
        let bytes = bincode::serialize(&old)?;
        let new: NewAccount = bincode::deserialize(&bytes)?;
        assert_eq!((new.allow_overdraft, new.credits_must_not_exceed_debits), (overdraft, false));
        assert_eq!(bincode::serialize(&new)?, bytes);
    }
    let every =
        TransferFlags { balancing_debit: true, balancing_credit: true, closing_debit: true, closing_credit: true };
    for flags in [every, TransferFlags { closing_credit: true, ..TransferFlags::NONE }] {
        let t = transfer(true, flags);
        let back: NewTransfer = bincode::deserialize(&bincode::serialize(&t)?)?;
        assert_eq!(back, t);
    }
    let a = NewAccount {
        id: "card".into(),
        currency: "USD".into(),
        allow_overdraft: true,
        credits_must_not_exceed_debits: true,
        metadata: "{}".into(),
    };
    assert_eq!(bincode::deserialize::<NewAccount>(&bincode::serialize(&a)?)?, a);
    // An unknown flag bit is refused, not dropped.
    let mut bytes = bincode::serialize(&transfer(false, TransferFlags::NONE))?;
    let at = bytes.len() - 2; // the flags byte, then `timeout_ms: None` (one byte)
    bytes[at] = 0x40;
    assert!(bincode::deserialize::<NewTransfer>(&bytes).is_err());
    Ok(())
}
