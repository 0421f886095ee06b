// Ledger console: the entry point (the key form, routing between pages, polling).
import { PAGES } from './pages.js';
import { api, can, h, problemBox, session } from './core.js';

// ---- Pages, routing and polling ---------------------------------------------------------------

let current = null; // the page being shown: { timers, alive }

/** What a page gets: where to show problems, and polling that stops when the page goes away. */
function pageContext(problemArea) {
  const ctx = {
    alive: true,
    timers: new Set(),
    /** Runs `fn` now and then `ms` after each run ends (never two at once; paused while the tab
     *  is hidden). A failure shows its problem and polling goes on. */
    every(ms, fn) {
      const tick = async () => {
        if (!ctx.alive) return;
        if (!document.hidden) {
          try {
            await fn();
            ctx.clearProblem();
          } catch (e) {
            ctx.showProblem(e);
          }
        }
        if (ctx.alive) {
          // A fired timer leaves the set: it holds only the pending ones, whatever the page's age.
          const t = setTimeout(() => {
            ctx.timers.delete(t);
            tick();
          }, ms);
          ctx.timers.add(t);
        }
      };
      tick();
    },
    showProblem(e) {
      if (ctx.alive) problemArea.replaceChildren(problemBox(e));
    },
    clearProblem() {
      if (ctx.alive) problemArea.replaceChildren();
    },
    stop() {
      ctx.alive = false;
      for (const t of ctx.timers) clearTimeout(t);
      ctx.timers.clear();
    },
  };
  return ctx;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = raw.split('/');
  return { name: name || '', arg: rest.length ? decodeURIComponent(rest.join('/')) : null };
}

function allowedPages() {
  return PAGES.filter((p) => !p.need || can(p.need));
}

function renderNav() {
  const { name } = parseHash();
  const nav = document.getElementById('nav');
  nav.replaceChildren(
    ...allowedPages().map((p) =>
      h('a', { href: `#/${p.name}`, 'aria-current': p.name === name ? 'page' : undefined, 'data-page': p.name }, p.title),
    ),
  );
}

function renderWho() {
  const who = document.getElementById('who');
  const me = session.me;
  if (!me) {
    who.textContent = session.key ? 'key not accepted' : 'no key';
  } else if (me.auth === 'none') {
    who.textContent = 'no authentication (--auth none): every action is open';
  } else {
    const prefix = me.account_prefix ? ` · accounts ${me.account_prefix}…` : '';
    who.textContent = `key ${me.key_id}: ${me.scopes.join(', ')}${prefix}`;
  }
  document.getElementById('key-forget').hidden = !session.key;
}

async function loadMe() {
  try {
    session.me = (await api('GET', '/v1/whoami')).body;
    return null;
  } catch (e) {
    session.me = null;
    return e;
  }
}

function route() {
  if (current) current.stop();
  const view = document.getElementById('view');
  const problemArea = h('div', { id: 'page-problem' });
  const ctx = pageContext(problemArea);
  current = ctx;
  renderNav();
  const { name, arg } = parseHash();
  if (!session.me) {
    view.replaceChildren(
      h('h1', {}, 'Sign in'),
      h('p', {}, 'This gateway asks for an API key. Enter one above; it stays in this browser tab only.'),
      problemArea,
    );
    if (lastAuthProblem) ctx.showProblem(lastAuthProblem);
    return;
  }
  const pages = allowedPages();
  const page = pages.find((p) => p.name === name) || (name === '' ? pages[0] : null);
  if (!page) {
    const known = PAGES.find((p) => p.name === name);
    view.replaceChildren(
      h('h1', {}, 'Not here'),
      problemArea,
      h('p', {}, known ? `This key may not see ${known.title}: it needs the scope ${known.need}.` : `No page ${name}.`),
    );
    return;
  }
  view.replaceChildren(problemArea);
  const body = h('div', { class: 'page', 'data-page': page.name });
  view.append(body);
  Promise.resolve(page.render(body, arg, ctx)).catch((e) => ctx.showProblem(e));
}

let lastAuthProblem = null;

async function start() {
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    session.key = input.value.trim();
    input.value = '';
    if (session.key) sessionStorage.setItem('ledger.key', session.key);
    else sessionStorage.removeItem('ledger.key');
    lastAuthProblem = await loadMe();
    renderWho();
    route();
  });
  document.getElementById('key-forget').addEventListener('click', async () => {
    session.key = '';
    sessionStorage.removeItem('ledger.key');
    lastAuthProblem = await loadMe();
    renderWho();
    route();
  });
  window.addEventListener('hashchange', route);
  lastAuthProblem = await loadMe();
  renderWho();
  route();
}

start();
