//! The command line, and the parsers that reject bad amounts and durations before anything is
//! sent.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ledger_core::limits::{AMOUNT_MAX, AMOUNT_MIN, TIMEOUT_MS_MAX};

/// Default gateway.
pub const GATEWAY_DEFAULT: &str = "http://127.0.0.1:8080";

/// `ledger`: talk to a Ledger gateway, or start a local system with `ledger dev`.
#[derive(Debug, Parser)]
#[command(name = "ledger", version, about = "Ledger's command-line client; `ledger dev` starts a whole local system.")]
pub struct Cli {
    /// Gateway base URL.
    #[arg(long, global = true, env = "LEDGER_GATEWAY", default_value = GATEWAY_DEFAULT)]
    pub gateway: String,
    /// API key sent as `Authorization: Bearer` (a gateway started with `--auth keys` asks for
    /// one). Prefer the environment variable: a flag shows in the process list.
    #[arg(long, global = true, env = "LEDGER_KEY", hide_env_values = true, default_value = "")]
    pub api_key: String,
    /// For an `https://` gateway (`gateway --tls-cert`): the CA certificate (PEM) to trust.
    #[arg(long, global = true, env = "LEDGER_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Reads: `strong` (through the leader: sees every acknowledged write, e.g. the transfer
    /// just made) or `follower` (any replica; may lag a little).
    #[arg(long, global = true, value_enum, default_value_t = ReadConsistency::Strong)]
    pub consistency: ReadConsistency,
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `--consistency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadConsistency {
    /// Linearizable, through the leader.
    Strong,
    /// Any follower.
    Follower,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create, show or list accounts.
    #[command(alias = "accounts")]
    Account {
        /// What to do.
        #[command(subcommand)]
        cmd: AccountCmd,
    },
    /// Move money: `ledger transfer <from> <to> <amount> --currency USD`; or post/void/show/list.
    #[command(alias = "transfers")]
    Transfer(TransferArgs),
    /// An account's balance changes, oldest first.
    History {
        /// Account id.
        account: String,
        /// Start after this log index (the `next` of an earlier page).
        #[arg(long)]
        after: Option<u64>,
        /// Most entries to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Revert a posted transfer: a new transfer of its posted amount back, once.
    Revert {
        /// The posted transfer's id.
        id: String,
    },
    /// An account's statement: opening balances, the changes in a log-index range, closing balances.
    Statement {
        /// Account id.
        account: String,
        /// First log index (default: from the account's creation).
        #[arg(long)]
        from_index: Option<u64>,
        /// Last log index (default: the latest).
        #[arg(long)]
        to_index: Option<u64>,
        /// Most changes to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Transactions: several postings under one id, applied all or none; show one; revert one.
    Tx {
        /// What to do.
        #[command(subcommand)]
        cmd: TxCmd,
    },
    /// Create or list topics.
    Topic {
        /// What to do.
        #[command(subcommand)]
        cmd: TopicCmd,
    },
    /// Append one JSON record to a topic.
    Produce {
        /// Topic name.
        topic: String,
        /// The record's value: any JSON text (quote it for the shell).
        #[arg(value_name = "JSON")]
        value: String,
        /// Partition key (records with the same key share a partition).
        #[arg(long)]
        key: Option<String>,
    },
    /// Print a topic's records and follow new ones (Ctrl-C stops).
    Tail {
        /// Topic name.
        topic: String,
        /// Consume as a member of this consumer group (commits what was printed).
        #[arg(long)]
        group: Option<String>,
        /// Start at the end (only records produced from now on).
        #[arg(long)]
        from_end: bool,
        /// Stop after this many records.
        #[arg(long)]
        max_records: Option<u64>,
    },
    /// Consumer groups; with a group: its members, assignments and lag per partition.
    Groups {
        /// Group to describe.
        group: Option<String>,
    },
    /// The lognodes: roles, liveness, the leader and the applied index.
    Cluster,
    /// API keys (admin): create, list, revoke.
    Key {
        /// What to do.
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Webhook subscriptions: create, list, show, delete, and their deliveries (docs/WEBHOOKS.md).
    Webhook {
        /// What to do.
        #[command(subcommand)]
        cmd: WebhookCmd,
    },
    /// The audit trail (admin): admin actions with the key that asked, oldest first.
    Audit {
        /// Actions after this log index (the `next` a previous page printed).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (1..=1000; default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Start a local system: lognodes, a gateway and the projector on 127.0.0.1.
    Dev(DevArgs),
    /// (internal) Run one child process of `ledger dev` with the parent-death signal set.
    #[command(name = "__child", hide = true)]
    Child {
        /// Pid of the `ledger dev` process; the child exits if that is not its parent.
        #[arg(long)]
        parent: u32,
        /// Program to run.
        program: OsString,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// `ledger key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create a key; prints its secret, which is shown only this once.
    Create {
        /// Scopes, comma-separated: admin, cluster:read, accounts:read, accounts:write,
        /// transfers:read, transfers:write, topics:produce:<topic|*>, topics:read:<topic|*>,
        /// groups:consume:<group|*>.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Only accounts whose id starts with this.
        #[arg(long)]
        account_prefix: Option<String>,
        /// Requests a second the key may make at each gateway (none: no limit); past it 429.
        #[arg(long)]
        rate_per_sec: Option<u32>,
        /// Requests a burst may take at once (default: one second of --rate-per-sec).
        #[arg(long)]
        burst: Option<u32>,
        /// Requests the key may have in flight at each gateway (none: no limit); past it 429.
        #[arg(long)]
        max_in_flight: Option<u32>,
    },
    /// List the live keys (ids and scopes; never secrets).
    List,
    /// Revoke a key: every gateway refuses it within about a second.
    Revoke {
        /// Key id.
        id: String,
    },
    /// Rotate a key: make a new key with the same scopes, account prefix and quotas (its secret
    /// is printed, only this once), then revoke the old one. Move the clients to the new secret
    /// before running it, or right after: the old one stops within about a second.
    Rotate {
        /// Id of the key to replace.
        id: String,
    },
}

/// `ledger account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Open an account.
    Create {
        /// Account id (chosen by you).
        id: String,
        /// Currency code, e.g. USD.
        #[arg(long)]
        currency: String,
        /// Let the balance go below zero (e.g. an equity or funding account).
        #[arg(long)]
        allow_overdraft: bool,
        /// Credits may never exceed debits (a liability-side account, e.g. a card); needs
        /// --allow-overdraft.
        #[arg(long, requires = "allow_overdraft")]
        credits_must_not_exceed_debits: bool,
        /// Metadata: a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Show an account's balances.
    Show {
        /// Account id.
        id: String,
    },
    /// List accounts in creation order, a page at a time.
    List {
        /// Only ids starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only this currency.
        #[arg(long)]
        currency: Option<String>,
        /// Only accounts whose metadata member KEY has VALUE (`KEY=VALUE`).
        #[arg(long, value_parser = parse_key_value)]
        metadata: Option<(String, String)>,
        /// Go on after this cursor (the `next` a previous page printed).
        #[arg(long)]
        after: Option<u32>,
        /// As of this log index (the `at_index` a previous page printed).
        #[arg(long)]
        at_index: Option<u64>,
        /// Page size, 1..=1000 (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// `KEY=VALUE`.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

/// `ledger transfer ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TransferArgs {
    /// Post, void, show or list existing transfers instead.
    #[command(subcommand)]
    pub action: Option<TransferAction>,
    /// Account debited.
    #[arg(required = true)]
    pub from: Option<String>,
    /// Account credited.
    #[arg(required = true)]
    pub to: Option<String>,
    /// Amount in minor units (e.g. cents): a whole number, at least 1.
    #[arg(required = true, allow_negative_numbers = true, value_parser = parse_amount)]
    pub amount: Option<u64>,
    /// Currency code; must match both accounts.
    #[arg(long, required = true)]
    pub currency: Option<String>,
    /// Transfer id (idempotency key: retrying with the same id never moves money twice).
    /// Default: a new unique id.
    #[arg(long)]
    pub id: Option<String>,
    /// Reserve the amount only (two-phase); post or void it later.
    #[arg(long)]
    pub pending: bool,
    /// With --pending: void automatically after this long (e.g. 30s, 5m, 2h).
    #[arg(long, requires = "pending", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Move at most <amount>: what <from> has, if less (a sweep).
    #[arg(long)]
    pub balancing_debit: bool,
    /// Move at most <amount>: what <to> may still be credited, if less.
    #[arg(long)]
    pub balancing_credit: bool,
    /// Close <from> (with --pending; voiding the transfer reopens it).
    #[arg(long, requires = "pending")]
    pub closing_debit: bool,
    /// Close <to> (with --pending; voiding the transfer reopens it).
    #[arg(long, requires = "pending")]
    pub closing_credit: bool,
    /// Metadata: a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
}

/// `ledger transfer post|void|show`.
#[derive(Debug, Subcommand)]
pub enum TransferAction {
    /// Post a pending transfer (all of it, or --amount).
    Post {
        /// The pending transfer's id.
        id: String,
        /// Post less than the pending amount.
        #[arg(long, allow_negative_numbers = true, value_parser = parse_amount)]
        amount: Option<u64>,
    },
    /// Void a pending transfer.
    Void {
        /// The pending transfer's id.
        id: String,
    },
    /// Show a transfer.
    Show {
        /// Transfer id.
        id: String,
    },
    /// List transfers in creation order, a page at a time.
    List {
        /// Only transfers debiting or crediting this account.
        #[arg(long)]
        account: Option<String>,
        /// Only this status as of the page's log index.
        #[arg(long, value_parser = ["pending", "posted", "voided", "expired"])]
        status: Option<String>,
        /// Only transfers created at this log index or later.
        #[arg(long)]
        from_index: Option<u64>,
        /// Only transfers created at this log index or earlier.
        #[arg(long)]
        to_index: Option<u64>,
        /// Only transfers whose metadata member KEY has VALUE (`KEY=VALUE`).
        #[arg(long, value_parser = parse_key_value)]
        metadata: Option<(String, String)>,
        /// Go on after this cursor (the `next` a previous page printed).
        #[arg(long)]
        after: Option<u64>,
        /// As of this log index (the `at_index` a previous page printed).
        #[arg(long)]
        at_index: Option<u64>,
        /// Page size, 1..=1000 (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// `ledger webhook ...`.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Subscribe a URL to the ledger's events; prints the signing secret if Ledger made it.
    Create {
        /// Where deliveries are POSTed (http:// or https://).
        url: String,
        /// Event types, comma-separated: account.created, transfer.created, transfer.posted,
        /// transfer.voided, transfer.expired, or * for all.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        events: Vec<String>,
        /// The subscription's id (default: Ledger makes one).
        #[arg(long)]
        id: Option<String>,
        /// The HMAC-SHA256 signing secret, 16-128 characters (default: Ledger makes one and
        /// prints it, only this once). Prefer the environment variable.
        #[arg(long, env = "LEDGER_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// List the subscriptions (never their secrets).
    List,
    /// One subscription with its delivery counts.
    Show {
        /// Webhook id.
        id: String,
    },
    /// Delete a subscription: deliveries stop within about a second.
    Delete {
        /// Webhook id.
        id: String,
    },
    /// Finished deliveries, newest first: dead letters and the newest delivered ones.
    Deliveries {
        /// Webhook id.
        id: String,
        /// Only `dead` or only `delivered`.
        #[arg(long, value_parser = ["dead", "delivered"])]
        status: Option<String>,
    },
}

/// `ledger tx ...`.
#[derive(Debug, Subcommand)]
pub enum TxCmd {
    /// Create a transaction (idempotent on its id: a retry never moves money twice).
    Create {
        /// Transaction id; posting n becomes the transfer <id>:<n>.
        id: String,
        /// A posting, DEBIT,CREDIT,AMOUNT,CURRENCY (e.g. alice,shop,1000,USD); give one per posting,
        /// in the order they apply.
        #[arg(long = "posting", required = true, value_parser = parse_posting)]
        postings: Vec<ledger_client::NewPosting>,
        /// Metadata: a JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Show a transaction and its postings.
    Show {
        /// Transaction id.
        id: String,
    },
    /// Revert a transaction: a new transaction that undoes it exactly, once, all or nothing.
    Revert {
        /// Transaction id.
        id: String,
    },
}

/// `DEBIT,CREDIT,AMOUNT,CURRENCY` (commas: account ids may hold `:` but never `,`).
pub fn parse_posting(s: &str) -> Result<ledger_client::NewPosting, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [debit, credit, amount, currency] = parts[..] else {
        return Err(format!("{s}: a posting is DEBIT,CREDIT,AMOUNT,CURRENCY, e.g. alice,shop,1000,USD"));
    };
    if debit.is_empty() || credit.is_empty() || currency.is_empty() {
        return Err(format!("{s}: the debit account, credit account and currency must not be empty"));
    }
    Ok(ledger_client::NewPosting {
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount: parse_amount(amount)?,
        currency: currency.to_owned(),
    })
}

/// `ledger topic ...`.
#[derive(Debug, Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    Create {
        /// Topic name (`[A-Za-z0-9._-]`).
        name: String,
        /// Partition count.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
        partitions: u32,
    },
    /// List topics.
    List,
}

/// `ledger dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Number of lognodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
    pub nodes: u16,
    /// The gateway's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where the nodes' data, PostgreSQL's data and the logs live.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Wipe the data dir first.
    #[arg(long)]
    pub fresh: bool,
    /// First of the internal ports: lognode i uses gRPC base+i and gossip base+100+i, the
    /// gateway's gossip base+201, a private PostgreSQL base+332.
    #[arg(long, default_value_t = 7100, value_parser = clap::value_parser!(u16).range(1024..=65000))]
    pub port_base: u16,
    /// Do not start the projector (nor a private PostgreSQL).
    #[arg(long)]
    pub no_projector: bool,
    /// Run the gateway with no API keys (`--auth none`): anyone who can reach it may do
    /// anything. Without it, the data dir's `admin.key` is the cluster's bootstrap admin key.
    #[arg(long)]
    pub insecure: bool,
    /// Run the lognodes and the gateway without mutual TLS between them (plaintext gRPC; the
    /// gossip stays encrypted with the data dir's gossip key). For measuring what TLS costs.
    #[arg(long)]
    pub no_tls: bool,
    /// Serve the gateway over HTTPS too, with a certificate of the data dir's CA (for
    /// 127.0.0.1 and localhost); clients trust `<data-dir>/tls/ca.pem` (`--ca-cert`,
    /// `LEDGER_CA_CERT`).
    #[arg(long, conflicts_with = "no_tls")]
    pub https: bool,
}

/// Parses an amount in minor units: a whole number in `AMOUNT_MIN..=AMOUNT_MAX`.
pub fn parse_amount(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the amount is empty: give a whole number of minor units, e.g. 1000".to_owned());
    }
    if t.starts_with('-') {
        return Err(format!("{t} is negative: amounts are at least {AMOUNT_MIN}; swap <from> and <to> instead"));
    }
    if t.contains(['.', ',']) {
        return Err(format!("{t} has a fraction: amounts are whole numbers of minor units (write 12.50 USD as 1250)"));
    }
    let digits = t.strip_prefix('+').unwrap_or(t).replace('_', "");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{t} is not a whole number of minor units"));
    }
    let too_big = || format!("{t} is too large: the largest amount is {AMOUNT_MAX}");
    let n: u64 = digits.parse().map_err(|_| too_big())?;
    if n < AMOUNT_MIN {
        return Err(format!("{t} is zero: amounts are at least {AMOUNT_MIN}"));
    }
    if n > AMOUNT_MAX {
        return Err(too_big());
    }
    Ok(n)
}

/// Parses a duration: a whole number with a unit `ms`, `s`, `m`, `h` or `d` (e.g. `30s`),
/// from 1 ms up to the ledger's longest pending timeout.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{t:?} is not a duration: write a whole number and a unit, e.g. 30s, 5m, 2h"));
    }
    let ms_per: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("{t:?} has no unit: write e.g. {t}s or {t}ms")),
        other => return Err(format!("{t:?}: unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    let too_long = || format!("{t} is too long: the longest pending timeout is {} h", TIMEOUT_MS_MAX / 3_600_000);
    let n: u64 = num.parse().map_err(|_| too_long())?;
    let ms = n.checked_mul(ms_per).ok_or_else(too_long)?;
    if ms == 0 {
        return Err(format!("{t} is zero: a timeout must be at least 1 ms"));
    }
    if ms > TIMEOUT_MS_MAX {
        return Err(too_long());
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_positive_minor_units() {
        assert_eq!(parse_amount("1"), Ok(1));
        assert_eq!(parse_amount("1000"), Ok(1000));
        assert_eq!(parse_amount("1_000"), Ok(1000));
        assert_eq!(parse_amount(&AMOUNT_MAX.to_string()), Ok(AMOUNT_MAX));
        for (bad, why) in [
            ("-5", "negative"),
            ("0", "zero"),
            ("000", "zero"),
            ("12.50", "fraction"),
            ("1,5", "fraction"),
            ("9223372036854775808", "too large"),
            ("99999999999999999999999", "too large"),
            ("ten", "not a whole number"),
            ("1e3", "not a whole number"),
            ("", "empty"),
        ] {
            let e = parse_amount(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_stay_in_range() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_millis(TIMEOUT_MS_MAX)));
        for (bad, why) in
            [("30", "no unit"), ("0s", "zero"), ("31d", "too long"), ("5y", "unknown unit"), ("s", "not a duration")]
        {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
