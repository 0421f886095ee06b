// Ledger console: the pages. Each one is `{ name, title, need, render(view, arg, ctx) }`: `need`
// is the scope its reads take (the nav hides pages the key may not see), and every action checks
// its own scope before it is shown.
import {
  ApiProblem, FormProblem, LIMITS, api, can, fmtTime, h, link, newId, outcomeUnknown, parseAmount, problemBox,
  ownWrites, query, seg, session, table, toJson,
} from './core.js';
import { Series, lineChart } from './charts.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const num = (v) => (v === undefined || v === null ? '—' : String(v));
const field = (label, input, hint) => h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', {}, hint) : null);

/** A button that runs `fn` once at a time and shows its problem in `out`. */
function action(text, attrs, out, fn) {
  const b = h('button', Object.assign({ type: 'button' }, attrs), text);
  b.addEventListener('click', async () => {
    if (b.disabled) return;
    b.disabled = true;
    try {
      await fn();
    } catch (e) {
      out.replaceChildren(problemBox(e));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/** Pages of a cursor-paginated listing: `load(after)` returns `{rows, next}`. `show()` shows the
 *  current page again; `atStart()` tells whether that is the first. */
function pager(out, headers, load, attrs) {
  const stack = [];
  let cursor = null;
  const fail = (e) => out.replaceChildren(problemBox(e));
  const show = async () => {
    const { rows, next } = await load(cursor);
    const move = (to) => () => {
      cursor = to();
      show().catch(fail);
    };
    const nav = h(
      'div',
      { class: 'pager' },
      stack.length ? h('button', { type: 'button', onclick: move(() => stack.pop()) }, '← Previous page') : null,
      next !== null && next !== undefined
        ? h('button', { type: 'button', class: 'next-page', onclick: move(() => { stack.push(cursor); return next; }) }, 'Next page →')
        : null,
      h('button', { type: 'button', onclick: move(() => { stack.length = 0; return null; }) }, 'Refresh'),
    );
    out.replaceChildren(rows.length ? table(headers, rows, attrs) : h('p', { class: 'empty' }, 'Nothing here.'), nav);
  };
  show.atStart = () => cursor === null;
  return show;
}

// ---- Cluster ----------------------------------------------------------------------------------

const cluster = {
  name: 'cluster',
  title: 'Cluster',
  need: 'cluster:read',
  render(view, arg, ctx) {
    const summary = h('p', { id: 'cluster-summary' }, 'Loading…');
    const nodes = h('div', { id: 'cluster-nodes' });
    const confirmArea = h('div', { id: 'cluster-confirm' });
    view.append(h('h1', {}, 'Cluster'), summary, nodes, confirmArea);
    const admin = can('admin');
    const askRemove = (id) => {
      confirmArea.replaceChildren(
        h(
          'div',
          { class: 'confirm', role: 'dialog', 'aria-label': `Remove node ${id}` },
          h('p', {}, `Remove node ${id} from the cluster? It stops voting and receives no more of the log. It can come back only as a new node, started afresh with --join.`),
          action(`Remove node ${id}`, { class: 'danger', id: 'confirm-remove' }, confirmArea, async () => {
            const r = await api('POST', `/v1/cluster/nodes/${seg(id)}/remove`);
            confirmArea.replaceChildren(h('p', { class: 'ok' }, `Node ${id} removed at log index ${r.body.index}.`));
          }),
          h('button', { type: 'button', onclick: () => confirmArea.replaceChildren() }, 'Cancel'),
        ),
      );
    };
    ctx.every(LIMITS.pollMs, async () => {
      const c = (await api('GET', '/v1/cluster')).body;
      const leader = c.nodes.find((n) => n.id === c.leader_id);
      const alive = c.nodes.filter((n) => n.alive).length;
      summary.textContent = leader
        ? `Leader: node ${leader.id} · applied index ${leader.last_applied} · ${c.nodes.length} nodes, ${alive} alive`
        : `No leader known · ${c.nodes.length} nodes, ${alive} alive`;
      const rows = c.nodes.map((n) =>
        h(
          'tr',
          { 'data-node': n.id, class: n.alive ? '' : 'down' },
          h('td', {}, String(n.id), n.id === c.leader_id ? h('span', { class: 'badge' }, 'leader') : null),
          h('td', {}, n.role),
          h('td', { 'data-field': 'alive' }, n.alive ? 'alive' : 'unreachable'),
          h('td', {}, n.grpc_addr),
          h('td', { class: 'num' }, num(n.last_applied)),
          h('td', { class: 'num', 'data-field': 'lag' }, leader ? String(Math.max(0, Number(leader.last_applied) - Number(n.last_applied))) : '—'),
          h('td', { class: 'num' }, num(n.snapshot_index)),
          h('td', { class: 'num' }, num(n.log_first_index)),
          admin ? h('td', {}, h('button', { type: 'button', class: 'danger small', onclick: () => askRemove(n.id) }, 'Remove…')) : null,
        ),
      );
      const headers = ['Node', 'Role', 'Liveness', 'gRPC address', 'Applied index', 'Behind the leader', 'Snapshot index', 'First log index'];
      if (admin) headers.push('Admin');
      nodes.replaceChildren(table(headers, rows, { id: 'nodes-table' }));
    });
  },
};

// ---- Accounts ---------------------------------------------------------------------------------

function balanceTable(a, id) {
  const row = (label, cells) => h('tr', {}, h('th', { scope: 'row' }, label), cells);
  const cell = (name, v) => h('td', { class: 'num', 'data-field': name }, num(v));
  return h(
    'table',
    { class: 'grid balances', id },
    h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', { scope: 'col' }, 'Debits'), h('th', { scope: 'col' }, 'Credits'), h('th', { scope: 'col' }, 'Balance (credits − debits)'))),
    h(
      'tbody',
      {},
      row('Posted', [cell('debits_posted', a.debits_posted), cell('credits_posted', a.credits_posted), cell('balance', a.balance)]),
      row('Pending', [cell('debits_pending', a.debits_pending), cell('credits_pending', a.credits_pending), h('td', {}, '')]),
      row('Available', [h('td', {}, ''), h('td', {}, ''), cell('available', a.available)]),
    ),
  );
}

function accountFlags(a) {
  const f = [];
  if (a.allow_overdraft) f.push('overdraft allowed');
  if (a.credits_must_not_exceed_debits) f.push('credits ≤ debits');
  if (a.closed) f.push('closed');
  return f.join(', ') || '—';
}

function accountForm() {
  const out = h('div', { id: 'account-create-result', 'aria-live': 'polite' });
  const id = h('input', { id: 'account-id', name: 'id', required: true, spellcheck: 'false', placeholder: 'e.g. customer:42' });
  const currency = h('input', { id: 'account-currency', name: 'currency', required: true, value: 'USD', size: 6 });
  const overdraft = h('input', { id: 'account-overdraft', type: 'checkbox' });
  const cap = h('input', { id: 'account-cap', type: 'checkbox' });
  const submit = h('button', { type: 'submit', id: 'account-submit' }, 'Create account');
  const form = h(
    'form',
    { id: 'account-create', class: 'card' },
    h('h2', {}, 'New account'),
    field('Id', id),
    field('Currency', currency),
    field('Overdraft allowed', overdraft, 'the balance may go below zero'),
    field('Credits may not exceed debits', cap, 'needs overdraft allowed'),
    submit,
    out,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    try {
      const body = { id: id.value.trim(), currency: currency.value.trim() };
      if (overdraft.checked) body.allow_overdraft = true;
      if (cap.checked) body.credits_must_not_exceed_debits = true;
      const r = await api('POST', '/v1/accounts', body);
      out.replaceChildren(
        h('p', { class: 'ok' }, r.replayed ? `Account ${r.body.id} already existed, the same.` : `Account ${r.body.id} created at log index ${r.index}. `, link(`#/accounts/${seg(r.body.id)}`, 'Open it')),
      );
    } catch (err) {
      out.replaceChildren(problemBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function accountSearch(view) {
  const q = h('input', { id: 'account-search', name: 'q', spellcheck: 'false', placeholder: 'account id or id prefix', value: (session.me && session.me.account_prefix) || '' });
  const results = h('div', { id: 'account-results' });
  const form = h('form', { class: 'inline', role: 'search' }, field('Find', q), h('button', { type: 'submit' }, 'Find'));
  let atIndex = null;
  const search = async () => {
    const prefix = q.value.trim();
    const load = async (after) => {
      if (after === null) atIndex = null;
      const r = await api('GET', `/v1/accounts${query({ prefix, limit: LIMITS.searchLimit, after, at_index: after === null ? undefined : atIndex, min_index: after === null ? ownWrites() : undefined })}`);
      atIndex = r.body.at_index;
      const rows = r.body.accounts.map((a) =>
        h('tr', { 'data-account': a.id }, h('td', {}, link(`#/accounts/${seg(a.id)}`, a.id)), h('td', {}, a.currency), h('td', { class: 'num' }, num(a.balance)), h('td', { class: 'num' }, num(a.available)), h('td', {}, accountFlags(a))),
      );
      if (after === null && r.body.accounts.length === 1 && r.body.accounts[0].id === prefix) {
        location.hash = `#/accounts/${seg(prefix)}`;
      }
      return { rows, next: r.body.next };
    };
    await pager(results, ['Account', 'Currency', 'Balance', 'Available', 'Flags'], load, { id: 'accounts-table' })();
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    search().catch((err) => results.replaceChildren(problemBox(err)));
  });
  view.append(h('h1', {}, 'Accounts'), form, results);
  if (can('accounts:write')) view.append(accountForm());
  search().catch((err) => results.replaceChildren(problemBox(err)));
}

function accountDetail(view, id, ctx) {
  const head = h('p', { id: 'account-head' }, 'Loading…');
  const balances = h('div', { id: 'account-balances' });
  const asOfIndex = h('input', { id: 'as-of-index', inputmode: 'numeric', placeholder: 'log index', size: 10 });
  const asOfOut = h('div', { id: 'account-as-of' });
  const asOf = h('form', { class: 'inline' }, field('Balances as of log index', asOfIndex), h('button', { type: 'submit' }, 'Show'));
  asOf.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const n = parseAmount(asOfIndex.value, 'the log index');
      const a = (await api('GET', `/v1/accounts/${seg(id)}${query({ as_of_index: n })}`)).body;
      asOfOut.replaceChildren(h('h3', {}, `As of log index ${n}`), balanceTable(a, 'as-of-balances'));
    } catch (err) {
      asOfOut.replaceChildren(problemBox(err));
    }
  });
  const history = h('div', { id: 'account-history' });
  view.append(h('p', {}, link('#/accounts', '← Accounts')), h('h1', {}, `Account ${id}`), head, balances, h('h2', {}, 'Balances at an earlier point'), asOf, asOfOut, h('h2', {}, 'History'), history);
  let version = null;
  let showHistory = null;
  ctx.every(LIMITS.pollMs, async () => {
    const r = await api('GET', `/v1/accounts/${seg(id)}${query({ min_index: ownWrites() })}`);
    const a = r.body;
    // The account changed: its history's first page shows the new entry (later pages stay put).
    if (version !== null && String(a.version) !== version && showHistory && showHistory.atStart()) {
      showHistory().catch((e) => history.replaceChildren(problemBox(e)));
    }
    version = String(a.version);
    head.textContent = `${a.currency} · created at log index ${a.created_index} (${fmtTime(a.created_timestamp_ms)}) · ${accountFlags(a)} · as of log index ${r.index}`;
    balances.replaceChildren(balanceTable(a, 'current-balances'));
  });
  const load = async (after) => {
    const r = (await api('GET', `/v1/accounts/${seg(id)}/transfers${query({ limit: LIMITS.pageSize, after, min_index: ownWrites() })}`)).body;
    const rows = r.entries.map((e) =>
      h(
        'tr',
        { 'data-transfer': e.transfer_id },
        h('td', { class: 'num' }, num(e.index)),
        h('td', {}, fmtTime(e.timestamp_ms)),
        h('td', {}, e.kind),
        h('td', {}, link(`#/transfers/${seg(e.transfer_id)}`, e.transfer_id)),
        h('td', { class: 'num' }, num(e.debits_posted)),
        h('td', { class: 'num' }, num(e.credits_posted)),
        h('td', { class: 'num' }, num(e.balance)),
        h('td', { class: 'num' }, num(e.available)),
      ),
    );
    return { rows, next: r.next };
  };
  showHistory = pager(history, ['Log index', 'Time', 'Change', 'Transfer', 'Debits posted', 'Credits posted', 'Balance', 'Available'], load, { id: 'history-table' });
  showHistory().catch((e) => history.replaceChildren(problemBox(e)));
}

const accounts = {
  name: 'accounts',
  title: 'Accounts',
  need: 'accounts:read',
  render(view, arg, ctx) {
    if (arg) accountDetail(view, arg, ctx);
    else accountSearch(view);
  },
};

// ---- Transfers --------------------------------------------------------------------------------

function transferForm() {
  const out = h('div', { id: 'transfer-result', 'aria-live': 'polite' });
  const id = h('input', { id: 'transfer-id', name: 'id', required: true, spellcheck: 'false', value: newId('tr-') });
  const debit = h('input', { id: 'transfer-debit', name: 'debit_account_id', required: true, spellcheck: 'false' });
  const credit = h('input', { id: 'transfer-credit', name: 'credit_account_id', required: true, spellcheck: 'false' });
  const amount = h('input', { id: 'transfer-amount', name: 'amount', required: true, inputmode: 'numeric', placeholder: 'minor units' });
  const currency = h('input', { id: 'transfer-currency', name: 'currency', required: true, value: 'USD', size: 6 });
  const pending = h('input', { id: 'transfer-pending', type: 'checkbox' });
  const timeout = h('input', { id: 'transfer-timeout', inputmode: 'numeric', placeholder: 'ms (optional)' });
  const submit = h('button', { type: 'submit', id: 'transfer-submit' }, 'Create transfer');
  const fresh = () => {
    id.value = newId('tr-');
    out.replaceChildren();
  };
  const form = h(
    'form',
    { id: 'transfer-create', class: 'card' },
    h('h2', {}, 'New transfer'),
    field('Id', id, 'chosen here, so a second send of the same form is a replay, never a second transfer'),
    h('button', { type: 'button', id: 'transfer-new-id', onclick: fresh }, 'New id'),
    field('Debit account', debit),
    field('Credit account', credit),
    field('Amount', amount),
    field('Currency', currency),
    field('Pending (two-phase)', pending),
    field('Pending timeout', timeout, 'expires unposted after this many ms'),
    submit,
    out,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    let body;
    try {
      body = {
        id: id.value.trim(),
        debit_account_id: debit.value.trim(),
        credit_account_id: credit.value.trim(),
        amount: parseAmount(amount.value, 'the amount'),
        currency: currency.value.trim(),
      };
      if (pending.checked) {
        body.pending = true;
        if (timeout.value.trim()) body.timeout_ms = parseAmount(timeout.value, 'the timeout');
      }
    } catch (err) {
      out.replaceChildren(problemBox(err));
      return;
    }
    submit.disabled = true;
    out.replaceChildren(h('p', {}, 'Sending…'));
    try {
      const r = await api('POST', '/v1/transfers', body);
      const t = r.body;
      out.replaceChildren(
        h(
          'p',
          { class: 'ok', 'data-transfer': t.id, 'data-replayed': String(r.replayed) },
          r.replayed ? `Transfer ${t.id} already existed: this send was a replay and applied nothing.` : `Transfer ${t.id} created`,
          ` (log index ${r.index}, ${t.status}). `,
          link(`#/transfers/${seg(t.id)}`, 'Open it'),
          ' ',
          h('button', { type: 'button', id: 'transfer-next', onclick: fresh }, 'Another transfer'),
        ),
      );
    } catch (err) {
      const hint = outcomeUnknown(err)
        ? `The outcome is unknown. The id ${body.id} is kept: sending again applies the transfer at most once.`
        : 'Nothing was applied. A new id is filled in for the next try.';
      if (!outcomeUnknown(err)) id.value = newId('tr-');
      out.replaceChildren(problemBox(err), h('p', { class: 'hint' }, hint));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function transferDetail(view, id) {
  const out = h('div', { id: 'transfer-detail' }, 'Loading…');
  const actions = h('div', { id: 'transfer-actions' });
  view.append(h('p', {}, link('#/transfers', '← Transfers')), h('h1', {}, `Transfer ${id}`), out, actions);
  const load = async () => {
    const r = await api('GET', `/v1/transfers/${seg(id)}${query({ min_index: ownWrites() })}`);
    const t = r.body;
    const row = (label, value, name) => h('tr', {}, h('th', { scope: 'row' }, label), h('td', { 'data-field': name }, value));
    out.replaceChildren(
      h(
        'table',
        { class: 'grid kv' },
        h(
          'tbody',
          {},
          row('Status', h('span', { class: `status ${t.status}` }, t.status), 'status'),
          row('Amount', `${num(t.amount)} ${t.currency}`, 'amount'),
          row('Debit account', link(`#/accounts/${seg(t.debit_account_id)}`, t.debit_account_id), 'debit'),
          row('Credit account', link(`#/accounts/${seg(t.credit_account_id)}`, t.credit_account_id), 'credit'),
          row('Log index', num(t.index), 'index'),
          row('Time', fmtTime(t.timestamp_ms), 'time'),
          t.pending ? row('Pending expires', t.expires_at_ms ? fmtTime(t.expires_at_ms) : 'never', 'expires') : null,
          t.resolution ? row('Resolution', `${t.resolution.status} ${num(t.resolution.amount)} at log index ${t.resolution.index}`, 'resolution') : null,
          row('Metadata', h('pre', {}, toJson(t.metadata || {}, 2)), 'metadata'),
        ),
      ),
    );
    actions.replaceChildren();
    if (t.status === 'pending' && can('transfers:write')) {
      const result = h('div', { id: 'pending-result' });
      const partial = h('input', { id: 'post-amount', inputmode: 'numeric', placeholder: `up to ${num(t.amount)}` });
      actions.append(
        h('h2', {}, 'Decide the pending transfer'),
        h(
          'div',
          { class: 'inline' },
          field('Amount to post', partial, 'empty: the full amount'),
          action('Post', { id: 'pending-post' }, result, async () => {
            const body = partial.value.trim() ? { amount: parseAmount(partial.value, 'the amount') } : {};
            await api('POST', `/v1/transfers/${seg(id)}/post`, body);
            await load();
          }),
          action('Void', { id: 'pending-void', class: 'danger' }, result, async () => {
            await api('POST', `/v1/transfers/${seg(id)}/void`, {});
            await load();
          }),
        ),
        result,
      );
    }
  };
  return load().catch((e) => out.replaceChildren(problemBox(e)));
}

function transferList(view) {
  const lookupId = h('input', { id: 'transfer-lookup-id', spellcheck: 'false', placeholder: 'transfer id', required: true });
  const lookup = h('form', { class: 'inline', role: 'search', id: 'transfer-lookup' }, field('Look up', lookupId), h('button', { type: 'submit' }, 'Open'));
  lookup.addEventListener('submit', (e) => {
    e.preventDefault();
    if (lookupId.value.trim()) location.hash = `#/transfers/${seg(lookupId.value.trim())}`;
  });
  const list = h('div', { id: 'transfer-list' });
  view.append(h('h1', {}, 'Transfers'), lookup);
  if (can('transfers:write')) view.append(transferForm());
  view.append(h('h2', {}, 'All transfers, oldest first'), list);
  let atIndex = null;
  const load = async (after) => {
    const r = (await api('GET', `/v1/transfers${query({ limit: LIMITS.pageSize, after, at_index: after === null ? undefined : atIndex, min_index: after === null ? ownWrites() : undefined })}`)).body;
    atIndex = r.at_index;
    const rows = r.transfers.map((t) =>
      h(
        'tr',
        { 'data-transfer': t.id },
        h('td', {}, link(`#/transfers/${seg(t.id)}`, t.id)),
        h('td', {}, t.status),
        h('td', { class: 'num' }, num(t.amount)),
        h('td', {}, t.currency),
        h('td', {}, t.debit_account_id),
        h('td', {}, t.credit_account_id),
        h('td', { class: 'num' }, num(t.index)),
      ),
    );
    return { rows, next: r.next };
  };
  pager(list, ['Transfer', 'Status', 'Amount', 'Currency', 'Debit', 'Credit', 'Log index'], load, { id: 'transfers-table' })().catch((e) => list.replaceChildren(problemBox(e)));
}

const transfers = {
  name: 'transfers',
  title: 'Transfers',
  need: 'transfers:read',
  render(view, arg) {
    if (arg) return transferDetail(view, arg);
    return transferList(view);
  },
};

// ---- Topics -----------------------------------------------------------------------------------

const recordsPath = (topic, p, q) => `/v1/topics/${seg(topic)}/partitions/${p}/records${query(q)}`;

/** A partition's `[start, end)` offsets: a one-record read from 0, or, once retention dropped
 *  offset 0, the range its `out_of_range` problem names. */
async function partitionRange(topic, p) {
  try {
    const r = await api('GET', recordsPath(topic, p, { offset: 0, limit: 1 }));
    return { start: r.body.records.length ? Number(r.body.records[0].offset) : Number(r.body.end_offset), end: Number(r.body.end_offset) };
  } catch (e) {
    const m = e instanceof ApiProblem && e.code === 'out_of_range' && /range (\d+)\.\.=(\d+)/.exec(e.detail);
    if (m) return { start: Number(m[1]), end: Number(m[2]) };
    throw e;
  }
}

function recordView(rec) {
  const value = typeof rec.value === 'string' ? rec.value : toJson(rec.value, 2);
  const headers = Object.entries(rec.headers || {}).map(([k, v]) => `${k}: ${v}`).join(' · ');
  return h(
    'article',
    { class: 'record', 'data-offset': String(rec.offset) },
    h('header', {}, h('strong', {}, `offset ${rec.offset}`), ` · ${fmtTime(rec.timestamp)}`, rec.key !== null && rec.key !== undefined ? ` · key ${rec.key}` : '', headers ? ` · ${headers}` : ''),
    h('pre', { class: 'record-value' }, value),
  );
}

function topicDetail(view, topic, ctx) {
  const parts = h('div', { id: 'topic-partitions' }, 'Loading…');
  view.append(h('p', {}, link('#/topics', '← Topics')), h('h1', {}, `Topic ${topic}`), parts);
  if (!can(`topics:read:${topic}`)) {
    parts.replaceChildren(h('p', {}, `This key may not read ${topic}: it needs the scope topics:read:${topic}.`));
    return;
  }
  const select = h('select', { id: 'tail-partition' });
  const toggle = h('button', { type: 'button', id: 'tail-toggle' }, 'Start live tail');
  const tailProblem = h('div', { id: 'tail-problem' });
  const records = h('div', { id: 'tail-records', class: 'records' });
  view.append(h('h2', {}, 'Live tail'), h('div', { class: 'inline' }, field('Partition', select), toggle), h('p', { class: 'hint' }, `Newest first; the last ${LIMITS.tailKept} records stay on the page.`), tailProblem, records);
  let count = null;
  let tail = null; // { stop: boolean }
  const stopTail = () => {
    if (tail) tail.stop = true;
    tail = null;
    toggle.textContent = 'Start live tail';
  };
  const runTail = async (me, p) => {
    let next = Math.max(0, (await partitionRange(topic, p)).end - LIMITS.tailBacklog);
    while (!me.stop && ctx.alive) {
      const t0 = Date.now();
      try {
        const r = (await api('GET', recordsPath(topic, p, { offset: next, limit: LIMITS.tailBatch, wait_ms: LIMITS.tailWaitMs }))).body;
        if (me.stop || !ctx.alive) return;
        for (const rec of r.records) records.prepend(recordView(rec));
        while (records.children.length > LIMITS.tailKept) records.lastChild.remove();
        next = Number(r.next_offset);
        tailProblem.replaceChildren();
      } catch (e) {
        tailProblem.replaceChildren(problemBox(e));
        if (e instanceof ApiProblem && e.code === 'out_of_range') next = (await partitionRange(topic, p)).start;
        else if (!outcomeUnknown(e) && e.status !== 429) {
          stopTail();
          return;
        }
        await sleep(LIMITS.pollMs);
      }
      const gap = LIMITS.tailMinGapMs - (Date.now() - t0);
      if (gap > 0) await sleep(gap);
    }
  };
  toggle.addEventListener('click', () => {
    if (tail) {
      stopTail();
      return;
    }
    const me = { stop: false };
    tail = me;
    records.replaceChildren();
    toggle.textContent = 'Stop live tail';
    runTail(me, Number(select.value)).catch((e) => {
      tailProblem.replaceChildren(problemBox(e));
      if (tail === me) stopTail();
    });
  });
  ctx.every(LIMITS.topicPollMs, async () => {
    if (count === null) {
      const t = (await api('GET', '/v1/topics')).body.topics.find((x) => x.name === topic);
      if (!t) throw new ApiProblem(404, { code: 'topic_not_found', title: 'Not Found', detail: `no topic ${topic}` });
      count = Math.min(t.partitions, LIMITS.partitionsShown);
      select.replaceChildren(...Array.from({ length: count }, (_, p) => h('option', { value: p }, String(p))));
    }
    const ranges = [];
    for (let p = 0; p < count; p += 1) ranges.push(await partitionRange(topic, p));
    const rows = ranges.map((r, p) => h('tr', { 'data-partition': p }, h('td', {}, String(p)), h('td', { class: 'num' }, String(r.start)), h('td', { class: 'num', 'data-field': 'end' }, String(r.end))));
    parts.replaceChildren(table(['Partition', 'First offset kept', 'End offset'], rows, { id: 'partitions-table' }));
  });
}

const topics = {
  name: 'topics',
  title: 'Topics',
  need: 'cluster:read',
  render(view, arg, ctx) {
    if (arg) return topicDetail(view, arg, ctx);
    const list = h('div', { id: 'topic-list' });
    view.append(h('h1', {}, 'Topics'), list);
    ctx.every(LIMITS.topicPollMs, async () => {
      const t = (await api('GET', '/v1/topics')).body.topics;
      const rows = t.map((x) => h('tr', { 'data-topic': x.name }, h('td', {}, link(`#/topics/${seg(x.name)}`, x.name)), h('td', { class: 'num' }, String(x.partitions))));
      list.replaceChildren(rows.length ? table(['Topic', 'Partitions'], rows, { id: 'topics-table' }) : h('p', { class: 'empty' }, 'No topics.'));
    });
    return undefined;
  },
};

// ---- Consumer groups ----------------------------------------------------------------------------

function resetForm(group, topicsOf) {
  const out = h('div', { id: 'reset-result' });
  const topic = h('select', { id: 'reset-topic' }, topicsOf().map((t) => h('option', { value: t }, t)));
  const partition = h('input', { id: 'reset-partition', inputmode: 'numeric', placeholder: 'every partition', size: 8 });
  const to = h('select', { id: 'reset-to' }, ['earliest', 'latest', 'offset', 'timestamp'].map((x) => h('option', { value: x }, x)));
  const value = h('input', { id: 'reset-value', inputmode: 'numeric', placeholder: 'offset or ms since the epoch', size: 16 });
  const form = h('form', { id: 'reset-form', class: 'card' }, h('h2', {}, 'Reset committed offsets (admin)'), h('p', { class: 'hint' }, 'The group must have no members: stop its consumers first.'), field('Topic', topic), field('Partition', partition), field('To', to), field('Offset or time', value), h('button', { type: 'submit', class: 'danger' }, 'Reset…'), out);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    let body;
    try {
      body = { topic: topic.value };
      if (!body.topic) throw new FormProblem('choose a topic');
      if (partition.value.trim()) body.partition = parseAmount(partition.value, 'the partition');
      if (to.value === 'earliest' || to.value === 'latest') body.to = to.value;
      else body.to = { [to.value]: parseAmount(value.value, `the ${to.value}`) };
    } catch (err) {
      out.replaceChildren(problemBox(err));
      return;
    }
    const what = `${body.topic}${body.partition === undefined ? ' (every partition)' : ` partition ${body.partition}`} to ${typeof body.to === 'string' ? body.to : toJson(body.to)}`;
    out.replaceChildren(
      h(
        'div',
        { class: 'confirm', role: 'dialog', 'aria-label': 'Reset offsets' },
        h('p', {}, `Move group ${group}'s committed offsets of ${what}? Its consumers will then read from there.`),
        action('Reset offsets', { class: 'danger', id: 'confirm-reset' }, out, async () => {
          const r = (await api('POST', `/v1/groups/${seg(group)}/offsets/reset`, body)).body;
          out.replaceChildren(h('p', { class: 'ok' }, `Reset at log index ${r.index}: ${r.offsets.map((o) => `${o.topic}/${o.partition} → ${o.offset}`).join(', ')}.`));
        }),
        h('button', { type: 'button', onclick: () => out.replaceChildren() }, 'Cancel'),
      ),
    );
  });
  return form;
}

function groupDetail(view, group, ctx) {
  const summary = h('p', { id: 'group-summary' }, 'Loading…');
  const chart = h('div', { id: 'group-lag-chart' });
  const members = h('div', { id: 'group-members' });
  const parts = h('div', { id: 'group-partitions' });
  view.append(h('p', {}, link('#/groups', '← Groups')), h('h1', {}, `Group ${group}`), summary, chart, h('h2', {}, 'Members'), members, h('h2', {}, 'Partitions'), parts);
  if (!can(`groups:consume:${group}`)) {
    summary.textContent = `This key may not describe ${group}: it needs the scope groups:consume:${group}.`;
    return;
  }
  const lag = new Series('total lag', 'series-a');
  let topicNames = [];
  if (can('admin')) view.append(resetForm(group, () => topicNames));
  ctx.every(LIMITS.pollMs, async () => {
    const g = (await api('GET', `/v1/groups/${seg(group)}`)).body;
    const total = g.partitions.reduce((s, p) => s + Number(p.lag), 0);
    lag.push(Date.now(), total);
    summary.replaceChildren(
      `Generation ${g.generation} · ${g.members.length} member${g.members.length === 1 ? '' : 's'} · total lag `,
      h('strong', { id: 'group-total-lag', 'data-lag': String(total) }, String(total)),
    );
    chart.replaceChildren(lineChart([lag], { title: 'Lag (records not yet committed)', unit: '', now: Date.now() }));
    members.replaceChildren(
      g.members.length
        ? table(['Member', 'Last sign of life', 'Assigned partitions'], g.members.map((m) => h('tr', { 'data-member': m.member_id }, h('td', {}, m.member_id), h('td', {}, fmtTime(m.last_heartbeat)), h('td', {}, m.assignments.map((a) => `${a.topic}/${a.partition}`).join(', ') || '—'))), { id: 'members-table' })
        : h('p', { class: 'empty' }, 'No members.'),
    );
    parts.replaceChildren(
      table(
        ['Topic', 'Partition', 'Owner', 'Committed offset', 'End offset', 'Lag'],
        g.partitions.map((p) => h('tr', { 'data-partition': `${p.topic}/${p.partition}` }, h('td', {}, p.topic), h('td', { class: 'num' }, String(p.partition)), h('td', {}, p.owner || '—'), h('td', { class: 'num' }, num(p.committed_offset)), h('td', { class: 'num' }, num(p.end_offset)), h('td', { class: 'num', 'data-field': 'lag' }, num(p.lag)))),
        { id: 'group-partitions-table' },
      ),
    );
    const names = [...new Set(g.partitions.map((p) => p.topic))];
    if (names.join() !== topicNames.join()) {
      topicNames = names;
      const sel = document.getElementById('reset-topic');
      if (sel) sel.replaceChildren(...names.map((t) => h('option', { value: t }, t)));
    }
  });
}

const groups = {
  name: 'groups',
  title: 'Consumer groups',
  need: 'cluster:read',
  render(view, arg, ctx) {
    if (arg) return groupDetail(view, arg, ctx);
    const list = h('div', { id: 'group-list' });
    view.append(h('h1', {}, 'Consumer groups'), list);
    ctx.every(LIMITS.pollMs, async () => {
      const g = (await api('GET', '/v1/groups')).body.groups;
      const rows = g.map((x) => h('tr', { 'data-group': x.group }, h('td', {}, link(`#/groups/${seg(x.group)}`, x.group)), h('td', { class: 'num' }, String(x.generation)), h('td', { class: 'num' }, String(x.members))));
      list.replaceChildren(rows.length ? table(['Group', 'Generation', 'Members'], rows, { id: 'groups-table' }) : h('p', { class: 'empty' }, 'No groups.'));
    });
    return undefined;
  },
};

// ---- Metrics ----------------------------------------------------------------------------------

/** The gateway's Prometheus text as `{ name: [[labels, value]] }`. */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    (out[m[1]] ||= []).push([labels, Number(m[4])]);
  }
  return out;
}

/** The `q` quantile (seconds) of the requests between two histogram readings: `{le: count}`. */
export function quantile(before, after, q) {
  const les = Object.keys(after).filter((x) => x !== '+Inf').map(Number).sort((a, b) => a - b);
  const count = (after['+Inf'] || 0) - (before['+Inf'] || 0);
  if (count <= 0) return NaN;
  const rank = q * count;
  let prevLe = 0;
  let prevCum = 0;
  for (const le of les) {
    const cum = (after[String(le)] || 0) - (before[String(le)] || 0);
    if (cum >= rank) return prevLe + ((le - prevLe) * (rank - prevCum)) / Math.max(1, cum - prevCum);
    prevLe = le;
    prevCum = cum;
  }
  return prevLe;
}

function histogram(m, skip) {
  const b = {};
  for (const [l, v] of m.gateway_http_request_duration_seconds_bucket || []) if (!skip(l)) b[l.le] = (b[l.le] || 0) + v;
  return b;
}

const metrics = {
  name: 'metrics',
  title: 'Throughput and latency',
  need: 'cluster:read',
  render(view, arg, ctx) {
    const charts = h('div', { id: 'metrics-charts' });
    const routes = h('div', { id: 'metrics-routes' });
    view.append(h('h1', {}, 'Throughput and latency'), h('p', { class: 'hint' }, `This gateway's own metrics (/metrics), read every ${LIMITS.pollMs / 1000} s; the console's reads of /metrics are left out.`), charts, h('h2', {}, 'By route, over the last reading'), routes);
    const rate = new Series('requests/s', 'series-a');
    const errors = new Series('errors/s', 'series-c');
    const p50 = new Series('p50', 'series-a');
    const p99 = new Series('p99', 'series-b');
    let prev = null;
    const skip = (l) => l.route === '/metrics';
    ctx.every(LIMITS.pollMs, async () => {
      const text = (await api('GET', '/metrics')).body;
      const m = parseMetrics(String(text));
      const t = Date.now();
      const reqs = (m.gateway_http_requests_total || []).filter(([l]) => !skip(l));
      const hist = histogram(m, skip);
      const total = reqs.reduce((sum, [, v]) => sum + v, 0);
      const errs = reqs.filter(([l]) => Number(l.status) >= 500).reduce((sum, [, v]) => sum + v, 0);
      const byRoute = new Map();
      for (const [l, v] of reqs) byRoute.set(`${l.method} ${l.route}`, (byRoute.get(`${l.method} ${l.route}`) || 0) + v);
      if (prev) {
        const secs = Math.max(0.001, (t - prev.t) / 1000);
        rate.push(t, (total - prev.total) / secs);
        errors.push(t, (errs - prev.errs) / secs);
        p50.push(t, quantile(prev.hist, hist, 0.5) * 1000);
        p99.push(t, quantile(prev.hist, hist, 0.99) * 1000);
        const rows = [...byRoute.entries()]
          .map(([k, v]) => [k, (v - (prev.byRoute.get(k) || 0)) / secs])
          .filter(([, r]) => r > 0)
          .sort((a, b) => b[1] - a[1])
          .map(([k, r]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, r.toFixed(1))));
        routes.replaceChildren(rows.length ? table(['Route', 'Requests/s'], rows, { id: 'routes-table' }) : h('p', { class: 'empty' }, 'No requests in the last reading.'));
      }
      prev = { t, total, errs, hist, byRoute };
      const inFlight = (m.gateway_in_flight_requests || []).reduce((s, [, v]) => s + v, 0);
      charts.replaceChildren(
        h('p', { id: 'metrics-now' }, `In flight now: ${inFlight}`),
        lineChart([rate, errors], { title: 'Throughput', unit: '/s', now: t }),
        lineChart([p50, p99], { title: 'Latency', unit: 'ms', now: t }),
      );
    });
  },
};

/** The pages, in the nav's order. */
export const PAGES = [cluster, accounts, transfers, topics, groups, metrics];
