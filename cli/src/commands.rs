//! One function per client command. Each validates its input locally where it can (amounts,
//! JSON), calls the gateway through `ledger-client`, and prints a table or JSON.

use ledger_client::{
    Account, Client, Cluster, GroupDescription, HistoryEntry, NewAccount, NewRecord, NewTransfer, Transfer, Written,
};
use ledger_core::limits::HISTORY_PAGE_MAX;
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{AccountCmd, Cmd, KeyCmd, TopicCmd, TransferAction, TransferArgs};
use crate::output::{Align, Out, key_values, table};

/// Most groups `ledger groups` describes in its overview.
pub const GROUPS_DESCRIBED_MAX: usize = 100;

/// Runs one client command.
pub async fn run(client: &Client, out: &Out, cmd: &Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::Account {
            cmd: AccountCmd::Create { id, currency, allow_overdraft, credits_must_not_exceed_debits, metadata },
        } => {
            let account = NewAccount {
                id: id.clone(),
                currency: currency.clone(),
                allow_overdraft: *allow_overdraft,
                credits_must_not_exceed_debits: *credits_must_not_exceed_debits,
                metadata: parse_metadata(metadata.as_deref())?,
            };
            let w = client.create_account(&account).await?;
            if out.json {
                out.json_value(&w.body);
            } else {
                let verb = if w.replayed { "already existed (idempotent replay)" } else { "created" };
                out.text(&format!("account {} {verb} at log index {}", w.body.id, w.index));
                out.text(&account_block(&w.body));
            }
        }
        Cmd::Account { cmd: AccountCmd::Show { id } } => {
            let a = client.account(id, out.consistency).await?;
            if out.json {
                out.json_value(&a);
            } else {
                out.text(&account_block(&a));
            }
        }
        Cmd::Account { cmd: AccountCmd::List { prefix, currency, metadata, after, at_index, limit } } => {
            let q = ledger_client::AccountsQuery {
                prefix: prefix.clone(),
                currency: currency.clone(),
                metadata: metadata.clone(),
                after: *after,
                at_index: *at_index,
                limit: *limit,
            };
            let page = client.list_accounts(&q).await?;
            if out.json {
                out.json_value(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .accounts
                    .iter()
                    .map(|a| vec![a.id.clone(), a.currency.clone(), a.balance.to_string(), a.available.to_string()])
                    .collect();
                let mut text = table(
                    &[
                        ("ID", Align::Left),
                        ("CURRENCY", Align::Left),
                        ("BALANCE", Align::Right),
                        ("AVAILABLE", Align::Right),
                    ],
                    &rows,
                );
                text.push_str(&format!("as of log index {}\n", page.at_index));
                if let Some(next) = page.next {
                    text.push_str(&format!(
                        "more: ledger account list --after {next} --at-index {} ...\n",
                        page.at_index
                    ));
                }
                out.text(&text);
            }
        }
        Cmd::Transfer(t) => transfer(client, out, t).await?,
        Cmd::History { account, after, limit } => history(client, out, account, *after, *limit).await?,
        Cmd::Revert { id } => {
            let w: Written<Transfer> = client.revert_transfer(id).await?;
            if out.json {
                out.json_value(&w.body);
            } else {
                let how = if w.replayed { "already reverted by" } else { "reverted by" };
                out.text(&format!("transfer {id} {how} {} at log index {}", w.body.id, w.index));
                out.text(&transfer_block(&w.body));
            }
        }
        Cmd::Statement { account, from_index, to_index, limit } => {
            statement(client, out, account, *from_index, *to_index, *limit).await?;
        }
        Cmd::Tx { cmd } => crate::tx::run(client, out, cmd).await?,
        Cmd::Topic { cmd: TopicCmd::Create { name, partitions } } => {
            let t = client.create_topic(name, *partitions).await?;
            if out.json {
                out.json_value(&t);
            } else {
                out.text(&format!(
                    "topic {} created with {} partition{} at log index {}",
                    t.name,
                    t.partitions,
                    if t.partitions == 1 { "" } else { "s" },
                    t.index
                ));
            }
        }
        Cmd::Topic { cmd: TopicCmd::List } => {
            let topics = client.topics().await?;
            if out.json {
                out.json_value(&json!({ "topics": topics }));
            } else {
                let rows: Vec<Vec<String>> =
                    topics.iter().map(|t| vec![t.name.clone(), t.partitions.to_string()]).collect();
                out.text(&table(&[("TOPIC", Align::Left), ("PARTITIONS", Align::Right)], &rows));
            }
        }
        Cmd::Produce { topic, value: text, key } => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Failure::usage(format!("the record is not valid JSON ({e}): {text}")))?;
            let record = NewRecord { key: key.clone(), value, headers: None };
            let p = client.produce(topic, std::slice::from_ref(&record)).await?;
            if out.json {
                out.json_value(&p);
            } else {
                for o in &p.offsets {
                    out.text(&format!(
                        "produced to {topic} partition {} offset {} (log index {})",
                        o.partition, o.offset, p.index
                    ));
                }
            }
        }
        Cmd::Tail { topic, group, from_end, max_records } => {
            crate::tail::run(client, out, topic, group.as_deref(), *from_end, *max_records).await?;
        }
        Cmd::Groups { group: Some(g) } => {
            let d = client.group(g).await?;
            if out.json {
                out.json_value(&d);
            } else {
                out.text(&group_block(&d));
            }
        }
        Cmd::Groups { group: None } => groups_overview(client, out).await?,
        Cmd::Cluster => {
            let c = client.cluster().await?;
            if out.json {
                out.json_value(&c);
            } else {
                out.text(&cluster_block(&c));
            }
        }
        Cmd::Key { cmd } => key(client, out, cmd).await?,
        Cmd::Webhook { cmd } => crate::webhook::run(client, out, cmd).await?,
        Cmd::Audit { after, limit } => {
            let page = client.audit(*after, *limit).await?;
            if out.json {
                out.json_value(&page);
            } else {
                let rows: Vec<Vec<String>> = page
                    .records
                    .iter()
                    .map(|a| {
                        vec![
                            a.index.to_string(),
                            a.timestamp_ms.to_string(),
                            a.by.clone(),
                            a.action.clone(),
                            a.target.clone(),
                            a.outcome.clone(),
                        ]
                    })
                    .collect();
                let mut text = table(
                    &[
                        ("INDEX", Align::Right),
                        ("TIME MS", Align::Right),
                        ("BY", Align::Left),
                        ("ACTION", Align::Left),
                        ("TARGET", Align::Left),
                        ("OUTCOME", Align::Left),
                    ],
                    &rows,
                );
                if let Some(next) = page.next {
                    text.push_str(&format!("more: ledger audit --after {next}\n"));
                }
                out.text(&text);
            }
        }
        Cmd::Dev(_) | Cmd::Child { .. } => return Err(Failure::failed("internal: not a client command")),
    }
    Ok(())
}

async fn transfer(client: &Client, out: &Out, t: &TransferArgs) -> Result<(), Failure> {
    let decision = match &t.action {
        Some(TransferAction::Show { id }) => {
            let tr = client.transfer(id, out.consistency).await?;
            if out.json {
                out.json_value(&tr);
            } else {
                out.text(&transfer_block(&tr));
            }
            return Ok(());
        }
        Some(TransferAction::List { account, status, from_index, to_index, metadata, after, at_index, limit }) => {
            let q = ledger_client::TransfersQuery {
                account_id: account.clone(),
                status: status.clone(),
                from_index: *from_index,
                to_index: *to_index,
                metadata: metadata.clone(),
                after: *after,
                at_index: *at_index,
                limit: *limit,
                ..ledger_client::TransfersQuery::default()
            };
            let page = client.list_transfers(&q).await?;
            if out.json {
                out.json_value(&page);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = page
                .transfers
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.debit_account_id.clone(),
                        t.credit_account_id.clone(),
                        t.amount.to_string(),
                        t.currency.clone(),
                        t.status.clone(),
                        t.index.to_string(),
                    ]
                })
                .collect();
            let mut text = table(
                &[
                    ("ID", Align::Left),
                    ("DEBIT", Align::Left),
                    ("CREDIT", Align::Left),
                    ("AMOUNT", Align::Right),
                    ("CURRENCY", Align::Left),
                    ("STATUS", Align::Left),
                    ("INDEX", Align::Right),
                ],
                &rows,
            );
            text.push_str(&format!("as of log index {}\n", page.at_index));
            if let Some(next) = page.next {
                let same = account.as_ref().map(|a| format!(" --account {a}")).unwrap_or_default();
                text.push_str(&format!(
                    "more: ledger transfer list{same} --after {next} --at-index {} ...\n",
                    page.at_index
                ));
            }
            out.text(&text);
            return Ok(());
        }
        Some(TransferAction::Post { id, amount }) => client.post_pending(id, *amount).await?,
        Some(TransferAction::Void { id }) => client.void_pending(id).await?,
        None => return create_transfer(client, out, t).await,
    };
    if out.json {
        out.json_value(&decision.body);
        return Ok(());
    }
    let r = &decision.body;
    let replay = if decision.replayed { " (idempotent replay: already decided so)" } else { "" };
    out.text(&format!("transfer {} {}{replay}", r.transfer_id, r.status));
    out.text(&key_values(&[
        ("transfer", r.transfer_id.clone()),
        ("status", r.status.clone()),
        ("amount", r.amount.to_string()),
        ("index", r.index.to_string()),
    ]));
    Ok(())
}

async fn create_transfer(client: &Client, out: &Out, t: &TransferArgs) -> Result<(), Failure> {
    let (Some(from), Some(to), Some(amount), Some(currency)) = (&t.from, &t.to, t.amount, &t.currency) else {
        return Err(Failure::usage("usage: ledger transfer <from> <to> <amount> --currency <code>"));
    };
    let timeout_ms = t.timeout.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let nt = NewTransfer {
        id: t.id.clone().unwrap_or_else(new_transfer_id),
        debit_account_id: from.clone(),
        credit_account_id: to.clone(),
        amount,
        currency: currency.clone(),
        pending: t.pending,
        timeout_ms,
        metadata: parse_metadata(t.metadata.as_deref())?,
        balancing_debit: t.balancing_debit,
        balancing_credit: t.balancing_credit,
        closing_debit: t.closing_debit,
        closing_credit: t.closing_credit,
    };
    let w: Written<Transfer> = client.create_transfer(&nt).await?;
    if out.json {
        out.json_value(&w.body);
        return Ok(());
    }
    if w.replayed {
        out.text(&format!(
            "transfer {} already existed (idempotent replay: nothing moved twice), log index {}",
            w.body.id, w.index
        ));
    } else {
        let what = if w.body.pending { "created (pending)" } else { "created" };
        out.text(&format!("transfer {} {what} at log index {}", w.body.id, w.index));
    }
    out.text(&transfer_block(&w.body));
    Ok(())
}

async fn statement(
    client: &Client,
    out: &Out,
    account: &str,
    from_index: Option<u64>,
    to_index: Option<u64>,
    limit: u32,
) -> Result<(), Failure> {
    let mut st =
        client.statement(account, from_index, to_index, None, Some(limit.min(HISTORY_PAGE_MAX as u32))).await?;
    // Bounded: every round adds at least one entry or stops, and stops at `limit` entries.
    while st.entries.len() < limit as usize {
        let Some(after) = st.next else { break };
        let want = (limit as usize - st.entries.len()).min(HISTORY_PAGE_MAX) as u32;
        let page = client.statement(account, Some(st.from_index), Some(st.to_index), Some(after), Some(want)).await?;
        if page.entries.is_empty() {
            break;
        }
        st.entries.extend(page.entries);
        st.next = page.next;
    }
    st.entries.truncate(limit as usize);
    if out.json {
        out.json_value(&st);
        return Ok(());
    }
    let balance = |a: Option<&ledger_client::Account>| a.map_or_else(|| "0".to_owned(), |a| a.balance.to_string());
    let mut text = format!(
        "statement of {} from log index {} to {}\nopening balance {}\n",
        st.account_id,
        st.from_index,
        st.to_index,
        balance(st.opening.as_ref())
    );
    let rows: Vec<Vec<String>> = st
        .entries
        .iter()
        .map(|e| {
            vec![
                e.index.to_string(),
                e.transfer_id.clone(),
                e.kind.clone(),
                e.balance.to_string(),
                e.available.to_string(),
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            ("INDEX", Align::Right),
            ("TRANSFER", Align::Left),
            ("KIND", Align::Left),
            ("BALANCE", Align::Right),
            ("AVAILABLE", Align::Right),
        ],
        &rows,
    ));
    text.push_str(&format!("closing balance {}\n", balance(Some(&st.closing))));
    if st.next.is_some() {
        text.push_str(&format!("(more than {limit} changes: raise --limit)\n"));
    }
    out.text(&text);
    Ok(())
}

async fn history(client: &Client, out: &Out, account: &str, after: Option<u64>, limit: u32) -> Result<(), Failure> {
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut after = after;
    let mut next = None;
    // Bounded: every round adds at least one entry or stops, and stops at `limit` entries.
    while entries.len() < limit as usize {
        let want = (limit as usize - entries.len()).min(HISTORY_PAGE_MAX);
        let page = client.history(account, after, Some(want as u32), out.consistency).await?;
        let got = page.entries.len();
        entries.extend(page.entries);
        next = page.next;
        match page.next {
            Some(n) if got > 0 => after = Some(n),
            _ => break,
        }
    }
    entries.truncate(limit as usize);
    if out.json {
        out.json_value(&json!({ "entries": entries, "next": next }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.index.to_string(),
                e.transfer_id.clone(),
                e.kind.clone(),
                e.debits_posted.to_string(),
                e.credits_posted.to_string(),
                e.debits_pending.to_string(),
                e.credits_pending.to_string(),
                e.balance.to_string(),
                e.available.to_string(),
            ]
        })
        .collect();
    out.text(&table(
        &[
            ("INDEX", Align::Right),
            ("TRANSFER", Align::Left),
            ("KIND", Align::Left),
            ("DEBITS", Align::Right),
            ("CREDITS", Align::Right),
            ("PENDING_DR", Align::Right),
            ("PENDING_CR", Align::Right),
            ("BALANCE", Align::Right),
            ("AVAILABLE", Align::Right),
        ],
        &rows,
    ));
    if let Some(n) = next {
        out.text(&format!("(more: ledger history {account} --after {n})"));
    }
    Ok(())
}

async fn groups_overview(client: &Client, out: &Out) -> Result<(), Failure> {
    let list = client.groups().await?;
    let names = group_names(&list);
    let mut described = Vec::new();
    for name in names.iter().take(GROUPS_DESCRIBED_MAX) {
        described.push(client.group(name).await?);
    }
    if out.json {
        out.json_value(&json!({ "groups": described }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = described
        .iter()
        .map(|d| {
            let lag: u64 = d.partitions.iter().filter_map(|p| p.lag).sum();
            vec![
                d.group.clone(),
                d.generation.to_string(),
                d.members.len().to_string(),
                d.partitions.len().to_string(),
                lag.to_string(),
            ]
        })
        .collect();
    out.text(&table(
        &[
            ("GROUP", Align::Left),
            ("GENERATION", Align::Right),
            ("MEMBERS", Align::Right),
            ("PARTITIONS", Align::Right),
            ("LAG", Align::Right),
        ],
        &rows,
    ));
    if names.len() > GROUPS_DESCRIBED_MAX {
        out.text(&format!("({} more groups not shown)", names.len() - GROUPS_DESCRIBED_MAX));
    }
    Ok(())
}

/// Group names out of `GET /v1/groups`, which lists them as strings or as objects with a
/// `group` (or `id`/`name`) field, either bare or under `groups`.
pub fn group_names(v: &Value) -> Vec<String> {
    let items = match v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => match o.get("groups") {
            Some(Value::Array(a)) => a.as_slice(),
            _ => &[],
        },
        _ => &[],
    };
    items
        .iter()
        .filter_map(|i| match i {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                ["group", "id", "name"].iter().find_map(|k| o.get(*k).and_then(Value::as_str)).map(str::to_owned)
            }
            _ => None,
        })
        .collect()
}

fn account_block(a: &Account) -> String {
    let mut pairs = vec![
        ("account", a.id.clone()),
        ("currency", a.currency.clone()),
        ("balance", a.balance.to_string()),
        ("available", a.available.to_string()),
        ("posted", format!("debits {}, credits {}", a.debits_posted, a.credits_posted)),
        ("pending", format!("debits {}, credits {}", a.debits_pending, a.credits_pending)),
        ("overdraft", if a.allow_overdraft { "allowed" } else { "not allowed" }.to_owned()),
    ];
    if a.credits_must_not_exceed_debits {
        pairs.push(("credit limit", "credits may not exceed debits".to_owned()));
    }
    if a.closed {
        pairs.push(("closed", "yes: refuses new transfers".to_owned()));
    }
    if !is_empty_metadata(&a.metadata) {
        pairs.push(("metadata", a.metadata.to_string()));
    }
    pairs.push(("as of index", a.index.to_string()));
    key_values(&pairs)
}

fn transfer_block(t: &Transfer) -> String {
    let mut pairs = vec![
        ("transfer", t.id.clone()),
        ("from", t.debit_account_id.clone()),
        ("to", t.credit_account_id.clone()),
        ("amount", format!("{} {}", t.amount, t.currency)),
        ("status", t.status.clone()),
    ];
    if let Some(e) = t.expires_at_ms {
        pairs.push(("expires at", format!("{e} ms (log time)")));
    }
    let flags: Vec<&str> = [
        (t.balancing_debit, "balancing_debit"),
        (t.balancing_credit, "balancing_credit"),
        (t.closing_debit, "closing_debit"),
        (t.closing_credit, "closing_credit"),
    ]
    .iter()
    .filter_map(|&(on, name)| on.then_some(name))
    .collect();
    if !flags.is_empty() {
        pairs.push(("flags", flags.join(", ")));
    }
    if let Some(r) = &t.resolution {
        pairs.push(("resolution", format!("{} {} by {} at index {}", r.status, r.amount, r.transfer_id, r.index)));
    }
    if !is_empty_metadata(&t.metadata) {
        pairs.push(("metadata", t.metadata.to_string()));
    }
    pairs.push(("index", t.index.to_string()));
    key_values(&pairs)
}

async fn key(client: &Client, out: &Out, cmd: &KeyCmd) -> Result<(), Failure> {
    match cmd {
        KeyCmd::Create { scopes, account_prefix, rate_per_sec, burst, max_in_flight } => {
            let new = ledger_client::NewKey {
                scopes: scopes.clone(),
                account_prefix: account_prefix.clone(),
                rate_per_sec: *rate_per_sec,
                burst: *burst,
                max_in_flight: *max_in_flight,
            };
            let w = client.create_key(&new).await?;
            if out.json {
                out.json_value(&w.body);
            } else {
                let k = &w.body;
                let prefix = if k.account_prefix.is_empty() { "(every account)" } else { k.account_prefix.as_str() };
                out.text(&format!(
                    "id:             {}\nscopes:         {}\naccount prefix: {prefix}\nsecret:         {}\n\n\
                     The secret is shown only now: store it (e.g. export LEDGER_KEY=...).\n",
                    k.id,
                    k.scopes.join(","),
                    k.secret
                ));
            }
        }
        KeyCmd::List => {
            let l = client.keys().await?;
            if out.json {
                out.json_value(&l);
            } else {
                let rows: Vec<Vec<String>> = l
                    .keys
                    .iter()
                    .map(|k| vec![k.id.clone(), k.scopes.join(","), k.account_prefix.clone(), k.created_by.clone()])
                    .collect();
                out.text(&table(
                    &[
                        ("ID", Align::Left),
                        ("SCOPES", Align::Left),
                        ("PREFIX", Align::Left),
                        ("CREATED BY", Align::Left),
                    ],
                    &rows,
                ));
            }
        }
        KeyCmd::Rotate { id } => {
            let list = client.keys().await?;
            let Some(old) = list.keys.iter().find(|k| k.id == *id) else {
                return Err(Failure::failed(format!("no live key {id} (ledger key list shows them)")));
            };
            let nonzero = |n: u32| (n != 0).then_some(n);
            let new = ledger_client::NewKey {
                scopes: old.scopes.clone(),
                account_prefix: (!old.account_prefix.is_empty()).then(|| old.account_prefix.clone()),
                rate_per_sec: nonzero(old.quota.rate_per_sec),
                burst: nonzero(old.quota.burst),
                max_in_flight: nonzero(old.quota.max_in_flight),
            };
            let made = client.create_key(&new).await?;
            let revoked = client.revoke_key(id).await?;
            if out.json {
                out.json_value(&serde_json::json!({"new": made.body, "revoked": id, "index": revoked.index}));
            } else {
                out.text(&format!(
                    "new key:        {}\nscopes:         {}\nsecret:         {}\nrevoked:        {id} (log index {})\n\n\
                     The secret is shown only now: store it (e.g. export LEDGER_KEY=...).\n",
                    made.body.id,
                    made.body.scopes.join(","),
                    made.body.secret,
                    revoked.index
                ));
            }
        }
        KeyCmd::Revoke { id } => {
            let w = client.revoke_key(id).await?;
            if out.json {
                out.json_value(&w.body);
            } else {
                out.text(&format!("revoked key {id} (log index {})\n", w.index));
            }
        }
    }
    Ok(())
}

fn cluster_block(c: &Cluster) -> String {
    let leader = c.leader_id.map_or_else(|| "none (election in progress?)".to_owned(), |l| format!("node {l}"));
    let rows: Vec<Vec<String>> = c
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                n.grpc_addr.clone(),
                n.role.clone(),
                if n.alive { "yes" } else { "NO" }.to_owned(),
                n.last_applied.to_string(),
                n.snapshot_index.to_string(),
                n.log_first_index.to_string(),
            ]
        })
        .collect();
    let mut s = format!("leader: {leader}\n");
    s.push_str(&table(
        &[
            ("NODE", Align::Right),
            ("ADDRESS", Align::Left),
            ("ROLE", Align::Left),
            ("ALIVE", Align::Left),
            ("APPLIED", Align::Right),
            ("SNAPSHOT", Align::Right),
            ("LOG FROM", Align::Right),
        ],
        &rows,
    ));
    s
}

fn group_block(d: &GroupDescription) -> String {
    let mut s = format!("group {}, generation {}, {} member(s)\n\n", d.group, d.generation, d.members.len());
    let members: Vec<Vec<String>> = d
        .members
        .iter()
        .map(|m| {
            let parts: Vec<String> = m.assignments.iter().map(|a| format!("{}/{}", a.topic, a.partition)).collect();
            let hb = match &m.last_heartbeat {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![m.member_id.clone(), parts.join(","), hb]
        })
        .collect();
    s.push_str(&table(
        &[("MEMBER", Align::Left), ("ASSIGNMENTS", Align::Left), ("LAST_HEARTBEAT_MS", Align::Left)],
        &members,
    ));
    s.push('\n');
    let dash = || "-".to_owned();
    let parts: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.owner.clone().unwrap_or_else(dash),
                p.committed_offset.map_or_else(dash, |o| o.to_string()),
                p.end_offset.to_string(),
                p.lag.map_or_else(dash, |l| l.to_string()),
            ]
        })
        .collect();
    s.push_str(&table(
        &[
            ("TOPIC", Align::Left),
            ("PARTITION", Align::Right),
            ("OWNER", Align::Left),
            ("COMMITTED", Align::Right),
            ("END", Align::Right),
            ("LAG", Align::Right),
        ],
        &parts,
    ));
    let lag: u64 = d.partitions.iter().filter_map(|p| p.lag).sum();
    s.push_str(&format!("total lag: {lag}\n"));
    s
}

fn is_empty_metadata(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `--metadata`: a JSON object, checked before sending.
pub(crate) fn parse_metadata(text: Option<&str>) -> Result<Option<Value>, Failure> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Ok(_) => Err(Failure::usage(format!("--metadata must be a JSON object, like '{{\"order\":42}}', got {text}"))),
        Err(e) => Err(Failure::usage(format!("--metadata is not valid JSON ({e}): {text}"))),
    }
}

/// A fresh transfer id when `--id` is not given: unique per process and instant. It is printed,
/// so a retry can reuse it with `--id`.
fn new_transfer_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("cli-{nanos:x}-{:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_from_strings_or_objects() {
        assert_eq!(group_names(&json!({"groups": ["a", {"group": "b"}, {"id": "c"}, 7]})), vec!["a", "b", "c"]);
        assert_eq!(group_names(&json!([{"name": "x"}])), vec!["x"]);
        assert!(group_names(&json!({"other": 1})).is_empty());
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(parse_metadata(Some(r#"{"a":1}"#)).is_ok());
        assert_eq!(parse_metadata(Some("[1]")).expect_err("array").code, crate::EXIT_USAGE);
        assert_eq!(parse_metadata(Some("{")).expect_err("bad json").code, crate::EXIT_USAGE);
    }
}
