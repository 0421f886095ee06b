// Browser test of the console (/console) against a real cluster and gateway: Debian's chromium,
// driven by playwright-core. Run by tests/cluster/console.rs, which starts the cluster and passes:
//   GATEWAY   the gateway's base URL (http://127.0.0.1:port)
//   ADMIN_KEY a key with `admin`
//   READ_KEY  a key with only `accounts:read`, `transfers:read` and `cluster:read`
//   CHROMIUM  the browser binary
// Every wait is bounded (STEP_MS); the first failure throws, prints what the page showed, exits 1.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const { GATEWAY, ADMIN_KEY, READ_KEY, CHROMIUM } = process.env;
for (const [k, v] of Object.entries({ GATEWAY, ADMIN_KEY, READ_KEY, CHROMIUM })) if (!v) throw new Error(`${k} is not set`);
const STEP_MS = 20000; // longest wait for one thing to show
const RUN = Date.now().toString(36); // names of this run
const log = (...a) => console.log(`[console-test ${new Date().toISOString()}]`, ...a);

async function call(method, path, body, key = ADMIN_KEY) {
  const headers = { Authorization: `Bearer ${key}` };
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const r = await fetch(GATEWAY + path, { method, headers, body: method === 'GET' ? undefined : JSON.stringify(body ?? {}), signal: AbortSignal.timeout(STEP_MS) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'], timeout: STEP_MS });
const page = await browser.newPage();
page.setDefaultTimeout(STEP_MS);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
page.on('console', (m) => {
  // A Content-Security-Policy violation or a script error is a bug of the console.
  if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`console error: ${m.text()}`);
});
page.on('requestfailed', (r) => {
  if (!r.url().includes('/records?')) pageErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
});

const text = (sel) => page.locator(sel).first().innerText();
const visible = (sel) => page.locator(sel).first().waitFor({ state: 'visible' });
/** Polls `fn` until it returns a truthy value, for at most STEP_MS. */
async function until(what, fn) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < STEP_MS) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}
async function go(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}
async function signIn(key) {
  await page.fill('#key-input', key);
  await page.click('#key-form button[type=submit]');
  await until('the key to be taken', async () => !(await text('#who')).includes('no key'));
}
const navPages = async () => page.locator('#nav a').evaluateAll((as) => as.map((a) => a.dataset.page));
async function step(name, fn) {
  log(name);
  await fn();
  assert.deepEqual(pageErrors, [], `${name}: the page logged errors`);
}

try {
  await step('without a key: the sign-in page shows the 401 problem', async () => {
    const r = await page.goto(`${GATEWAY}/console`);
    assert.equal(r.status(), 200);
    assert.ok(page.url().endsWith('/console/'), page.url());
    await visible('.problem[data-code="unauthorized"]');
    assert.match(await text('.problem[data-code="unauthorized"] .problem-detail'), /API key/);
    assert.deepEqual(await navPages(), []);
  });

  await step('with the admin key every page is in the nav', async () => {
    await signIn(ADMIN_KEY);
    assert.match(await text('#who'), /key admin: admin/);
    assert.deepEqual(await navPages(), ['cluster', 'accounts', 'transfers', 'topics', 'groups', 'metrics']);
  });

  await step('cluster: three nodes, one leader, lag per node, removal behind a confirmation', async () => {
    await go('#/cluster');
    await until('three node rows', async () => (await page.locator('#nodes-table tbody tr').count()) === 3);
    assert.equal(await page.locator('#nodes-table .badge').count(), 1);
    assert.match(await text('#cluster-summary'), /Leader: node \d/);
    const lags = await page.locator('#nodes-table [data-field="lag"]').allInnerTexts();
    assert.ok(lags.every((l) => /^\d+$/.test(l)), String(lags));
    await page.locator('#nodes-table button.danger').first().click();
    await visible('#confirm-remove');
    await page.locator('#cluster-confirm button', { hasText: 'Cancel' }).click();
    assert.equal(await page.locator('#confirm-remove').count(), 0);
    assert.equal(await page.locator('#nodes-table tbody tr').count(), 3);
  });

  const equity = `c${RUN}-equity`;
  const alice = `c${RUN}-alice`;
  await step('accounts: create two from the form, find them by prefix', async () => {
    await go('#/accounts');
    for (const [id, overdraft] of [[equity, true], [alice, false]]) {
      await page.fill('#account-id', id);
      await page.setChecked('#account-overdraft', overdraft);
      await page.click('#account-submit');
      await until(`account ${id} created`, async () => (await text('#account-create-result')).includes(`Account ${id} created`));
    }
    await page.fill('#account-search', `c${RUN}-`);
    await page.click('form[role=search] button[type=submit]');
    await until('both accounts listed', async () => (await page.locator('#accounts-table tbody tr').count()) === 2);
  });

  let firstIndex;
  await step('transfers: a double click on the form makes one transfer; sending again is a replay', async () => {
    await go('#/transfers');
    await visible('#transfer-create');
    const id = await page.inputValue('#transfer-id');
    assert.match(id, /^tr-[0-9a-f]{16}$/);
    await page.fill('#transfer-debit', equity);
    await page.fill('#transfer-credit', alice);
    await page.fill('#transfer-amount', '1500');
    await page.dblclick('#transfer-submit');
    await visible(`#transfer-result .ok[data-transfer="${id}"]`);
    await page.click('#transfer-submit');
    await visible(`#transfer-result .ok[data-replayed="true"]`);
    assert.equal(await page.inputValue('#transfer-id'), id, 'the id stays until "Another transfer"');
    const history = await call('GET', `/v1/accounts/${alice}/transfers`);
    assert.equal(history.entries.length, 1, JSON.stringify(history));
    firstIndex = history.entries[0].index;
    assert.equal((await call('GET', `/v1/accounts/${alice}`)).balance, 1500);
    await page.click('#transfer-next');
    assert.notEqual(await page.inputValue('#transfer-id'), id);
  });

  await step('a refused transfer shows its problem+json code and detail, and gets a new id', async () => {
    const id = await page.inputValue('#transfer-id');
    await page.fill('#transfer-credit', `c${RUN}-nobody`);
    await page.click('#transfer-submit');
    await visible('#transfer-result .problem[data-code="account_not_found"]');
    assert.match(await text('#transfer-result .problem-detail'), new RegExp(`c${RUN}-nobody`));
    assert.match(await text('#transfer-result .problem-status'), /HTTP 422/);
    assert.notEqual(await page.inputValue('#transfer-id'), id);
  });

  await step('accounts: the balance shows, changes live, and as of an earlier log index', async () => {
    await go(`#/accounts/${alice}`);
    await until('balance 1500', async () => (await text('#current-balances [data-field="balance"]')) === '1500');
    await call('POST', '/v1/transfers', { id: `api-${RUN}`, debit_account_id: equity, credit_account_id: alice, amount: 500, currency: 'USD' });
    await until('balance 2000 without a reload', async () => (await text('#current-balances [data-field="balance"]')) === '2000');
    await page.fill('#as-of-index', String(firstIndex));
    await page.click('#as-of-index >> xpath=ancestor::form//button');
    await until('the balance as of the first transfer', async () => (await text('#as-of-balances [data-field="balance"]')) === '1500');
    await until('two history rows', async () => (await page.locator('#history-table tbody tr').count()) === 2);
  });

  await step('transfers: a pending transfer from the form, posted from its page', async () => {
    await go('#/transfers');
    await visible('#transfer-create');
    await page.fill('#transfer-debit', equity);
    await page.fill('#transfer-credit', alice);
    await page.fill('#transfer-amount', '300');
    await page.check('#transfer-pending');
    await page.click('#transfer-submit');
    await visible('#transfer-result .ok');
    await page.locator('#transfer-result .ok a').click();
    await until('status pending', async () => (await text('[data-field="status"]')) === 'pending');
    // The page reads the transfer again after posting it. Reads are spread over followers, which
    // may lag, so that read must ask for the post's own log index (read-your-writes).
    const path = (r) => new URL(r.url()).pathname;
    const posted = page.waitForResponse((r) => r.request().method() === 'POST' && path(r).endsWith('/post'));
    const reread = page.waitForRequest((r) => r.method() === 'GET' && path(r).startsWith('/v1/transfers/') && path(r).split('/').length === 4);
    await page.click('#pending-post');
    const postIndex = (await posted).headers()['ledger-index'];
    assert.ok(postIndex, 'the post has a Ledger-Index');
    assert.equal(new URL((await reread).url()).searchParams.get('min_index'), postIndex, 'the read after the post asks for its index');
    await until('status posted', async () => (await text('[data-field="status"]')) === 'posted');
    assert.equal(await page.locator('#pending-post').count(), 0);
    assert.equal((await call('GET', `/v1/accounts/${alice}`)).balance, 2300);
  });

  const topic = `ct${RUN}`;
  await step('topics: partitions with end offsets, and a live tail with pretty JSON', async () => {
    await call('POST', '/v1/topics', { name: topic, partitions: 1 });
    await call('POST', `/v1/topics/${topic}/records`, { records: [{ key: 'k', value: { n: 1, nested: { ok: true } } }, { value: 'plain' }] });
    await go('#/topics');
    await visible(`#topics-table tr[data-topic="${topic}"]`);
    await go(`#/topics/${topic}`);
    await until('end offset 2', async () => (await text('#partitions-table [data-field="end"]')) === '2');
    await page.click('#tail-toggle');
    await until('two records', async () => (await page.locator('#tail-records .record').count()) === 2);
    await call('POST', `/v1/topics/${topic}/records`, { records: [{ value: { n: 3 } }] });
    await until('the new record on top', async () => (await page.locator('#tail-records .record').first().getAttribute('data-offset')) === '2');
    const pretty = await text('#tail-records .record[data-offset="0"] .record-value');
    assert.match(pretty, /\n {2}"nested": \{\n {4}"ok": true/, pretty);
    await page.click('#tail-toggle');
  });

  const group = `cg${RUN}`;
  await step('groups: lag rises under produce and falls as a member commits; admins reset offsets', async () => {
    const m = await call('POST', `/v1/groups/${group}/members`, { topics: [topic], auto_offset_reset: 'earliest', session_timeout_ms: 300000 });
    await go('#/groups');
    await visible(`#groups-table tr[data-group="${group}"]`);
    await go(`#/groups/${group}`);
    await visible('#members-table');
    const lagNow = async () => Number(await page.locator('#group-total-lag').getAttribute('data-lag'));
    const reading = async () => ((await page.locator('#group-total-lag').count()) ? { lag: await lagNow() } : null);
    const before = (await until('a lag reading', reading)).lag;
    await call('POST', `/v1/topics/${topic}/records`, { records: Array.from({ length: 5 }, (_, i) => ({ value: { i } })) });
    await until('the lag to rise by 5', async () => (await lagNow()) === before + 5);
    const end = (await call('GET', `/v1/topics/${topic}/partitions/0/records?offset=0&limit=1`)).end_offset;
    await call('POST', `/v1/groups/${group}/members/${m.member_id}/offsets`, { generation: m.generation, offsets: [{ topic, partition: 0, offset: end }] });
    await until('the lag to fall to 0', async () => (await lagNow()) === 0);
    assert.ok((await page.locator('#group-lag-chart svg.chart polyline').count()) >= 1);
    await call('DELETE', `/v1/groups/${group}/members/${m.member_id}`);
    await until('no members', async () => (await page.locator('#group-members .empty').count()) === 1);
    await page.selectOption('#reset-to', 'earliest');
    await page.click('#reset-form button[type=submit]');
    await page.click('#confirm-reset');
    await visible('#reset-result .ok');
    await until('the lag back to every record', async () => (await lagNow()) === end);
  });

  await step('metrics: throughput and latency charts', async () => {
    await go('#/metrics');
    await until('two charts', async () => (await page.locator('#metrics-charts svg.chart').count()) === 2);
    for (let i = 0; i < 20; i += 1) await call('GET', `/v1/accounts/${alice}`);
    await until('the account reads in the per-route table', async () => (await page.locator('#routes-table').count()) && (await text('#routes-table')).includes('GET /v1/accounts/{id}'));
    await until('a throughput above zero', async () => !/requests\/s: 0 \/s/.test(await page.locator('#metrics-charts svg.chart').first().getAttribute('aria-label')) || null);
  });

  await step('a read-only key sees what it may read and no action', async () => {
    const pending = `pend-${RUN}`;
    await call('POST', '/v1/transfers', { id: pending, debit_account_id: equity, credit_account_id: alice, amount: 7, currency: 'USD', pending: true });
    await page.click('#key-forget');
    await visible('.problem[data-code="unauthorized"]');
    await signIn(READ_KEY);
    assert.deepEqual(await navPages(), ['cluster', 'accounts', 'transfers', 'topics', 'groups', 'metrics']);
    await go('#/cluster');
    await until('three node rows', async () => (await page.locator('#nodes-table tbody tr').count()) === 3);
    assert.equal(await page.locator('#nodes-table button').count(), 0, 'no removal without admin');
    await go('#/accounts');
    await visible('#accounts-table');
    assert.equal(await page.locator('#account-create').count(), 0);
    await go('#/transfers');
    await visible('#transfers-table');
    assert.equal(await page.locator('#transfer-create').count(), 0);
    await go(`#/transfers/${pending}`);
    await until('status pending', async () => (await text('[data-field="status"]')) === 'pending');
    assert.equal(await page.locator('#pending-post, #pending-void').count(), 0, 'no post or void without transfers:write');
    await go(`#/topics/${topic}`);
    await until('the scope it lacks for the topic', async () => (await text('#topic-partitions')).includes(`topics:read:${topic}`));
    assert.equal(await page.locator('#tail-toggle').count(), 0);
    await go(`#/groups/${group}`);
    await until('the scope it lacks for the group', async () => (await text('#group-summary')).includes(`groups:consume:${group}`));
    assert.equal(await page.locator('#reset-form').count(), 0);
  });
  log('all steps passed');
} catch (e) {
  console.error(`FAILED: ${e.stack || e}`);
  try {
    console.error(`page at ${page.url()}:\n${(await page.locator('body').innerText()).slice(0, 4000)}`);
  } catch {
    // the page itself is gone
  }
  console.error(pageErrors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
