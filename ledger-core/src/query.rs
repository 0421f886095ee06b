//! Queries over the records (issue 17): accounts in creation order, filtered, a page at a time,
//! as of a log index. Pure reads of the store, like every other read.

use crate::Ledger;
use crate::limits::{ACCOUNT_PAGE_MAX, ACCOUNT_SCAN_MAX};
use crate::store::LedgerStore;
use crate::types::AccountView;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ApplyContext, Command, NewAccount, NewTransfer};

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
        let later =
            NewAccount { id: "b".into(), currency: "USD".into(), allow_overdraft: false, metadata: "{}".into() };
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
}
