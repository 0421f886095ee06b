//! Queries over the records (issue 17): accounts and transfers in creation order, filtered, a
//! page at a time, as of a log index. Pure reads of the store, like every other read.

use crate::Ledger;
use crate::limits::{ACCOUNT_PAGE_MAX, ACCOUNT_SCAN_MAX, TRANSFER_PAGE_MAX, TRANSFER_SCAN_MAX};
use crate::store::{LedgerStore, Transfer};
use crate::types::{AccountView, TransferEventKind, TransferStatus, TransferView};

/// Which accounts a scan keeps. Every condition given must hold.
#[derive(Default)]
pub struct AccountFilter<'a> {
    /// The id starts with this.
    pub id_prefix: Option<&'a str>,
    /// The currency is this one.
    pub currency: Option<&'a str>,
    /// Any other condition (e.g. on the metadata, which this crate does not parse): called with
    /// the account as of the scan's index.
    pub keep: Option<&'a dyn Fn(&AccountView) -> bool>,
}

/// One page of [`Ledger::scan_accounts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountScan {
    /// The accounts kept, in creation order, as of the scan's index.
    pub accounts: Vec<AccountView>,
    /// The account number to go on after (pass it as `after`); `None` once every account
    /// created at or before the scan's index was looked at (a full page that ends with the
    /// last such account has none).
    pub next: Option<u32>,
}

impl<S: LedgerStore> Ledger<S> {
    /// Accounts in creation order, after account number `after` (from the first if `None`), as
    /// they were once log entry `at` was applied: accounts created later are left out, and the
    /// balances are those of `at`. Keeps those `filter` accepts, until `limit` (capped at
    /// [`ACCOUNT_PAGE_MAX`]) are kept or [`ACCOUNT_SCAN_MAX`] were looked at; then `next` says
    /// where to go on. Pinning `at` makes the pages of one scan agree with each other while
    /// writes go on: a page never shows an account, or a balance, newer than `at`.
    pub fn scan_accounts(&self, after: Option<u32>, at: u64, limit: usize, filter: &AccountFilter<'_>) -> AccountScan {
        let limit = limit.clamp(1, ACCOUNT_PAGE_MAX);
        let count = u32::try_from(self.store().account_count()).unwrap_or(u32::MAX);
        let currency = match filter.currency {
            Some(code) => match self.currency_number(code) {
                Some(n) => Some(n),
                // No account has this currency.
                None => return AccountScan { accounts: Vec::new(), next: None },
            },
            None => None,
        };
        let mut accounts = Vec::new();
        let mut ai = after.map_or(0, |a| a.saturating_add(1));
        let mut looked = 0;
        while ai < count {
            let a = self.store().account(ai);
            if a.created_index > at {
                // Accounts are numbered in creation order: every later one is newer too.
                break;
            }
            if accounts.len() >= limit || looked >= ACCOUNT_SCAN_MAX {
                // There is more to look at: `ai` (not looked at yet) is the first of it.
                return AccountScan { accounts, next: Some(ai - 1) };
            }
            looked += 1;
            let wanted =
                filter.id_prefix.is_none_or(|p| a.id.starts_with(p)) && currency.is_none_or(|c| a.currency == c);
            if wanted {
                let (balances, index, version) = self.balances_as_of(ai, &a, at);
                let view = self.view_account(a, balances, index, version);
                if filter.keep.is_none_or(|keep| keep(&view)) {
                    accounts.push(view);
                }
            }
            ai += 1;
        }
        AccountScan { accounts, next: None }
    }
}

/// Which transfers a scan keeps. Every condition given must hold; the ranges are inclusive.
pub struct TransferFilter<'a> {
    /// The transfer debits or credits this account. The scan then walks the account's history
    /// (its cursor is a version of that account), not every transfer.
    pub account: Option<&'a str>,
    /// Its status as of the scan's index.
    pub status: Option<TransferStatus>,
    /// Log index of its creation, lowest and highest.
    pub created_index: (u64, u64),
    /// Log time of its creation (ms), earliest and latest.
    pub created_ms: (u64, u64),
    /// Any other condition (e.g. on the metadata): called with the transfer as of the scan's index.
    pub keep: Option<&'a dyn Fn(&TransferView) -> bool>,
}

impl Default for TransferFilter<'_> {
    fn default() -> Self {
        TransferFilter {
            account: None,
            status: None,
            created_index: (0, u64::MAX),
            created_ms: (0, u64::MAX),
            keep: None,
        }
    }
}

/// One page of [`Ledger::scan_transfers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferScan {
    /// The transfers kept, in creation order, as of the scan's index.
    pub transfers: Vec<TransferView>,
    /// Where to go on after (pass it as `after`): a transfer number, or with an account filter
    /// a version of that account. `None` once every candidate was looked at.
    pub next: Option<u64>,
}

/// Whether a transfer still to look at (created at `index`, log time `ms`) is past the scan's
/// end: creation order is both log-index and log-time order, so every later one is too.
fn past_end(f: &TransferFilter<'_>, at: u64, index: u64, ms: u64) -> bool {
    index > at.min(f.created_index.1) || ms > f.created_ms.1
}

impl<S: LedgerStore> Ledger<S> {
    /// Transfers in creation order, after cursor `after` (from the first if `None`), as they
    /// were once log entry `at` was applied: transfers created later are left out, and a status
    /// decided later shows as it was then. Keeps those `filter` accepts, until `limit` (capped at
    /// [`TRANSFER_PAGE_MAX`]) are kept or [`TRANSFER_SCAN_MAX`] were looked at; `next` then
    /// says where to go on. `None` if the filter's account does not exist.
    ///
    /// Without an account the cursor is a transfer number and the creation ranges are found by
    /// binary search (numbers follow creation, and so log index and log time). With one, it is
    /// a version of the account: its history holds one `created` record per transfer touching
    /// it, in creation order.
    pub fn scan_transfers(
        &self,
        after: Option<u64>,
        at: u64,
        limit: usize,
        filter: &TransferFilter<'_>,
    ) -> Option<TransferScan> {
        let limit = limit.clamp(1, TRANSFER_PAGE_MAX);
        let mut out = Vec::new();
        let keep = |l: &Self, t: Transfer, out: &mut Vec<TransferView>| {
            if t.created_index < filter.created_index.0 || t.created_timestamp_ms < filter.created_ms.0 {
                return;
            }
            // The status as of `at` first: most of a sparse status filter's misses skip the view.
            let status = t.resolution.filter(|r| r.index <= at).map_or(t.created_decision().status, |r| r.status);
            if filter.status.is_some_and(|s| s != status) {
                return;
            }
            let view = l.view_transfer(t, at);
            if filter.keep.is_none_or(|k| k(&view)) {
                out.push(view);
            }
        };
        if let Some(id) = filter.account {
            let ai = self.store().account_index(id)?;
            let len = self.store().account(ai).history_len();
            // The first version created at or after `created_index.0`.
            let from = self.store().history_partition_point(ai, len, filter.created_index.0.saturating_sub(1));
            let mut v = after.unwrap_or(0).max(from);
            let mut looked = 0;
            while v < len {
                if out.len() >= limit || looked >= TRANSFER_SCAN_MAX {
                    return Some(TransferScan { transfers: out, next: Some(v) });
                }
                let chunk = (TRANSFER_SCAN_MAX - looked).min(256) as u64;
                let records = self.store().history_range(ai, v + 1, (v + chunk).min(len));
                for r in records {
                    if out.len() >= limit || looked >= TRANSFER_SCAN_MAX {
                        return Some(TransferScan { transfers: out, next: Some(v) });
                    }
                    if r.index > at.min(filter.created_index.1) {
                        return Some(TransferScan { transfers: out, next: None });
                    }
                    looked += 1;
                    v += 1;
                    if r.kind != TransferEventKind::Created {
                        continue;
                    }
                    let t = self.store().transfer(r.transfer);
                    if past_end(filter, at, t.created_index, t.created_timestamp_ms) {
                        return Some(TransferScan { transfers: out, next: None });
                    }
                    keep(self, t, &mut out);
                }
            }
            return Some(TransferScan { transfers: out, next: None });
        }
        let count = u32::try_from(self.store().transfer_count()).unwrap_or(u32::MAX);
        // The first transfer created in both ranges' lower ends (numbers follow creation).
        let (mut lo, mut hi) = (0u32, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t = self.store().transfer(mid);
            if t.created_index < filter.created_index.0 || t.created_timestamp_ms < filter.created_ms.0 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let start = after.map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX).saturating_add(1)).max(lo);
        let mut ti = start;
        while ti < count {
            if out.len() >= limit || usize::try_from(ti - start).unwrap_or(usize::MAX) >= TRANSFER_SCAN_MAX {
                return Some(TransferScan { transfers: out, next: Some(u64::from(ti) - 1) });
            }
            let t = self.store().transfer(ti);
            if past_end(filter, at, t.created_index, t.created_timestamp_ms) {
                break;
            }
            keep(self, t, &mut out);
            ti += 1;
        }
        Some(TransferScan { transfers: out, next: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ApplyContext, Command, NewAccount, NewTransfer, TransferStatus, TransferView};

    fn ledger_with(accounts: &[(&str, &str)]) -> Ledger {
        let mut l = Ledger::default();
        let mut index = 0;
        let mut apply = |l: &mut Ledger, cmd: Command| {
            index += 1;
            let (o, _) = l.apply(&cmd, ApplyContext { index, timestamp_ms: 1000 + index });
            assert!(created(&o), "{o:?}");
        };
        for (id, currency) in accounts {
            let account = NewAccount {
                credits_must_not_exceed_debits: false,
                id: (*id).into(),
                currency: (*currency).into(),
                allow_overdraft: id.starts_with("eq"),
                metadata: "{}".into(),
            };
            apply(&mut l, Command::CreateAccount(account));
        }
        l
    }

    fn created(o: &crate::types::Outcome) -> bool {
        use crate::types::Outcome;
        match o {
            Outcome::Account(r) => r.code == crate::ResultCode::Created,
            Outcome::Transfer(r) => r.code == crate::ResultCode::Created,
            _ => false,
        }
    }

    fn ids(s: &AccountScan) -> Vec<&str> {
        s.accounts.iter().map(|a| &*a.id).collect()
    }

    /// Pages follow creation order and filters; a sparse filter ends a page at the scan bound.
    #[test]
    fn pages_follow_creation_order_and_filters() {
        let l = ledger_with(&[("eq", "USD"), ("a-1", "USD"), ("b-1", "EUR"), ("a-2", "EUR"), ("a-3", "USD")]);
        let at = l.last_index();
        let all = AccountFilter::default();
        let p1 = l.scan_accounts(None, at, 2, &all);
        assert_eq!((ids(&p1), p1.next), (vec!["eq", "a-1"], Some(1)));
        let p2 = l.scan_accounts(p1.next, at, 2, &all);
        assert_eq!((ids(&p2), p2.next), (vec!["b-1", "a-2"], Some(3)));
        let p3 = l.scan_accounts(p2.next, at, 2, &all);
        assert_eq!((ids(&p3), p3.next), (vec!["a-3"], None));
        let exact = l.scan_accounts(Some(2), at, 2, &all);
        assert_eq!((ids(&exact), exact.next), (vec!["a-2", "a-3"], None), "a full last page has no cursor");
        let prefix = AccountFilter { id_prefix: Some("a-"), currency: Some("USD"), ..AccountFilter::default() };
        assert_eq!(ids(&l.scan_accounts(None, at, 10, &prefix)), vec!["a-1", "a-3"]);
        let none = AccountFilter { currency: Some("JPY"), ..AccountFilter::default() };
        assert_eq!(l.scan_accounts(None, at, 10, &none), AccountScan { accounts: vec![], next: None });
        let keep = |a: &AccountView| a.allow_overdraft;
        let custom = AccountFilter { keep: Some(&keep), ..AccountFilter::default() };
        assert_eq!(ids(&l.scan_accounts(None, at, 10, &custom)), vec!["eq"]);
        assert_eq!(l.scan_accounts(Some(u32::MAX), at, 10, &all).accounts.len(), 0);
    }

    /// A scan pinned to an index shows neither the accounts created after it nor later balances.
    #[test]
    fn a_pinned_scan_ignores_later_writes() {
        let mut l = ledger_with(&[("eq", "USD"), ("a", "USD")]);
        let at = l.last_index();
        let t = NewTransfer {
            flags: Default::default(),
            id: "t1".into(),
            debit_account_id: "eq".into(),
            credit_account_id: "a".into(),
            amount: 5,
            currency: "USD".into(),
            metadata: "{}".into(),
            pending: false,
            timeout_ms: None,
        };
        let (o, _) = l.apply(&Command::CreateTransfer(t), ApplyContext { index: at + 1, timestamp_ms: 5000 });
        assert!(created(&o), "{o:?}");
        let later = NewAccount {
            credits_must_not_exceed_debits: false,
            id: "b".into(),
            currency: "USD".into(),
            allow_overdraft: false,
            metadata: "{}".into(),
        };
        let (o, _) = l.apply(&Command::CreateAccount(later), ApplyContext { index: at + 2, timestamp_ms: 5001 });
        assert!(created(&o), "{o:?}");
        let pinned = l.scan_accounts(None, at, 10, &AccountFilter::default());
        assert_eq!(ids(&pinned), vec!["eq", "a"]);
        assert!(pinned.accounts.iter().all(|a| a.balance == 0 && a.version == 0), "{pinned:?}");
        let now = l.scan_accounts(None, l.last_index(), 10, &AccountFilter::default());
        assert_eq!(ids(&now), vec!["eq", "a", "b"]);
        assert_eq!(now.accounts[1].balance, 5);
        assert_eq!(now.accounts[1], l.account("a").expect("a"), "the latest page agrees with a point read");
    }

    /// At most `ACCOUNT_SCAN_MAX` accounts are looked at per call; the cursor goes on from there.
    #[test]
    fn one_call_looks_at_a_bounded_number_of_accounts() {
        let names: Vec<String> = (0..ACCOUNT_SCAN_MAX + 10).map(|i| format!("x{i}")).collect();
        let mut list: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "USD")).collect();
        list.push(("wanted", "USD"));
        let l = ledger_with(&list);
        let f = AccountFilter { id_prefix: Some("wanted"), ..AccountFilter::default() };
        let p1 = l.scan_accounts(None, l.last_index(), 10, &f);
        assert_eq!((p1.accounts.len(), p1.next), (0, Some(ACCOUNT_SCAN_MAX as u32 - 1)));
        let p2 = l.scan_accounts(p1.next, l.last_index(), 10, &f);
        assert_eq!((ids(&p2), p2.next), (vec!["wanted"], None));
    }

    fn transfer(id: &str, debit: &str, credit: &str, amount: u64, pending: bool) -> Command {
        Command::CreateTransfer(NewTransfer {
            flags: Default::default(),
            id: id.into(),
            debit_account_id: debit.into(),
            credit_account_id: credit.into(),
            amount,
            currency: "USD".into(),
            metadata: "{}".into(),
            pending,
            timeout_ms: None,
        })
    }

    /// eq, a, b (USD); t1 eq→a at index 4 (ms 2000), t2 eq→b pending at 5 (ms 3000), t3 a→b at
    /// 6 (ms 4000), then t2 posted at 7 (ms 5000).
    fn ledger_with_transfers() -> Ledger {
        let mut l = ledger_with(&[("eq", "USD"), ("a", "USD"), ("b", "USD")]);
        let steps = [
            transfer("t1", "eq", "a", 10, false),
            transfer("t2", "eq", "b", 20, true),
            transfer("t3", "a", "b", 3, false),
            Command::PostPending { pending_id: "t2".into(), amount: None },
        ];
        for (k, cmd) in steps.iter().enumerate() {
            let index = 4 + k as u64;
            let (o, _) = l.apply(cmd, ApplyContext { index, timestamp_ms: 2000 + 1000 * k as u64 });
            assert!(created(&o) || matches!(o, crate::types::Outcome::Transfer(_)), "{o:?}");
        }
        assert_eq!(l.transfer("t2").map(|t| t.status), Some(TransferStatus::Posted));
        l
    }

    fn tids(s: &TransferScan) -> Vec<&str> {
        s.transfers.iter().map(|t| &*t.id).collect()
    }

    /// Every transfer in creation order, a page at a time, or those of one account; a status as of
    /// an index; ranges of creation index and log time.
    #[test]
    fn transfer_pages_follow_creation_order_and_filters() {
        let l = ledger_with_transfers();
        let now = l.last_index();
        let all = TransferFilter::default();
        let scan = |after, at, limit, f: &TransferFilter<'_>| l.scan_transfers(after, at, limit, f).expect("scan");
        let p1 = scan(None, now, 2, &all);
        assert_eq!((tids(&p1), p1.next), (vec!["t1", "t2"], Some(1)));
        let p2 = scan(p1.next, now, 2, &all);
        assert_eq!((tids(&p2), p2.next), (vec!["t3"], None));
        assert_eq!(p1.transfers[1], l.transfer("t2").expect("t2"), "the latest page agrees with a point read");

        // As of index 6, t2 was still pending and t3 just created; as of 4 only t1 existed.
        let pending = TransferFilter { status: Some(TransferStatus::Pending), ..TransferFilter::default() };
        let then = scan(None, 6, 10, &pending);
        assert_eq!(tids(&then), vec!["t2"]);
        assert_eq!((then.transfers[0].resolution, then.transfers[0].status), (None, TransferStatus::Pending));
        assert!(tids(&scan(None, now, 10, &pending)).is_empty());
        assert_eq!(tids(&scan(None, 4, 10, &all)), vec!["t1"]);

        // One account: b was credited by t2 and t3 (its history also holds t2's post).
        let b = TransferFilter { account: Some("b"), ..TransferFilter::default() };
        let pb = scan(None, now, 1, &b);
        assert_eq!((tids(&pb), pb.next), (vec!["t2"], Some(1)));
        let pb2 = scan(pb.next, now, 1, &b);
        assert_eq!(tids(&pb2), vec!["t3"]);
        assert_eq!(tids(&scan(pb2.next, now, 1, &b)), Vec::<&str>::new());
        let missing = TransferFilter { account: Some("nope"), ..TransferFilter::default() };
        assert_eq!(l.scan_transfers(None, now, 10, &missing), None);

        // Creation ranges, with and without an account.
        for account in [None, Some("b")] {
            let by_index = TransferFilter { account, created_index: (5, 5), ..TransferFilter::default() };
            assert_eq!(tids(&scan(None, now, 10, &by_index)), vec!["t2"], "{account:?}");
            let by_ms = TransferFilter { account, created_ms: (3500, 4000), ..TransferFilter::default() };
            assert_eq!(tids(&scan(None, now, 10, &by_ms)), vec!["t3"], "{account:?}");
        }
        let big = |t: &TransferView| t.amount >= 10;
        let custom = TransferFilter { keep: Some(&big), ..TransferFilter::default() };
        assert_eq!(tids(&scan(None, now, 10, &custom)), vec!["t1", "t2"]);
    }

    /// At most `TRANSFER_SCAN_MAX` transfers are looked at per call; the cursor goes on from there.
    #[test]
    fn one_transfer_call_looks_at_a_bounded_number() {
        let mut l = ledger_with(&[("eq", "USD"), ("a", "USD")]);
        let n = TRANSFER_SCAN_MAX as u64 + 5;
        let base = l.last_index();
        for k in 0..n {
            let (o, _) = l.apply(
                &transfer(&format!("x{k}"), "eq", "a", 1, false),
                ApplyContext { index: base + 1 + k, timestamp_ms: 10_000 + k },
            );
            assert!(created(&o), "{o:?}");
        }
        let only_last = |t: &TransferView| t.id.as_ref() == format!("x{}", n - 1);
        for account in [None, Some("a")] {
            let f = TransferFilter { account, keep: Some(&only_last), ..TransferFilter::default() };
            let p1 = l.scan_transfers(None, l.last_index(), 10, &f).expect("scan");
            assert_eq!(
                (p1.transfers.len(), p1.next),
                (0, Some(TRANSFER_SCAN_MAX as u64 - 1 + u64::from(account.is_some())))
            );
            let p2 = l.scan_transfers(p1.next, l.last_index(), 10, &f).expect("scan");
            assert_eq!((tids(&p2), p2.next), (vec![format!("x{}", n - 1).as_str()], None), "{account:?}");
        }
    }
}
