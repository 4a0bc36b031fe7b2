// Shared by every page: API calls with the cluster secret (asked for once, kept in this tab's
// sessionStorage), live polling, the header, DOM building (text only: nothing from the API is
// ever parsed as HTML) and number formatting.

const SECRET_KEY = 'tempest.secret';
/** How often pages poll the API. */
export const POLL_MS = 2000;

/** An API answer that was not 2xx (status 0: the server did not answer). */
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    /** What the banner shows instead of the message (text and links), if set. */
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------------------------
// DOM

/** Creates an element: `h('a', {href: '/', class: 'x'}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element, as `h` does. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces the children of `el`. */
export function put(el, ...children) {
  el.replaceChildren();
  fill(el, null, children);
  return el;
}

/** The element with this id (throws if the page lacks it: a bug, not a runtime condition). */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}

/**
 * A table that keeps its head and replaces its body on each `update(rows)`.
 * `columns`: [{title, get(row) -> text|Node, num?, cls?, title?}]; `key(row)` becomes `data-key`.
 */
export function table(container, columns, { key, empty = 'Nothing yet.' } = {}) {
  const tbody = h('tbody');
  const head = h('thead', null, h('tr', null, columns.map((c) =>
    h('th', { class: c.num ? 'num' : null, title: c.help ?? null }, c.title))));
  put(container, h('div', { class: 'tablewrap' }, h('table', null, head, tbody)));
  return {
    update(rows) {
      if (!rows.length) {
        put(tbody, h('tr', null, h('td', { class: 'empty', colspan: columns.length }, empty)));
        return;
      }
      put(tbody, rows.map((row) => h('tr', { dataset: key ? { key: key(row) } : null },
        columns.map((c) => h('td', {
          class: [c.num ? 'num' : '', c.cls ?? ''].join(' ').trim() || null,
          dataset: c.field ? { field: c.field } : null,
        }, c.get(row))))));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting

const INT = new Intl.NumberFormat('en-US');

/** 1234567 -> "1,234,567"; null -> "–". */
export function int(n) {
  return n === null || n === undefined || Number.isNaN(Number(n)) ? '–' : INT.format(Number(n));
}

/** A rate or size, compact: 0.4, 12.3, 845, 12.3k, 4.56M. */
export function compact(x) {
  const n = Number(x);
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(a >= 1e10 ? 1 : 2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(a >= 1e4 ? 1 : 2)}k`;
  if (a >= 100 || n === 0) return n.toFixed(0);
  return n.toFixed(a >= 10 ? 1 : 2);
}

/** Seconds -> "45s", "6m 5s", "2h 0m", "3d 4h" (like Storm's, shortened). */
export function duration(secs) {
  if (secs === null || secs === undefined) return '–';
  let t = Math.max(0, Math.floor(secs));
  const d = Math.floor(t / 86400); t %= 86400;
  const hr = Math.floor(t / 3600); t %= 3600;
  const m = Math.floor(t / 60); const sec = t % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** Seconds ago -> "just now", "12 s ago", "4 min ago". */
export function ago(secs) {
  if (secs === null || secs === undefined) return '–';
  if (secs < 2) return 'just now';
  if (secs < 120) return `${Math.round(secs)} s ago`;
  if (secs < 7200) return `${Math.round(secs / 60)} min ago`;
  return `${Math.round(secs / 3600)} h ago`;
}

/** Unix seconds -> local "2024-06-10 08:13:20". */
export function when(unixSecs) {
  if (!unixSecs) return '–';
  const d = new Date(unixSecs * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A latency in ms, as the API's string ("0.048") or a number. */
export function ms(v) {
  if (v === null || v === undefined || v === '') return '–';
  const n = Number(v);
  return Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(3)) : String(v);
}

/** Colour of a capacity (0 green, 0.5 amber, >= 0.9 red), as CSS hsl(). */
export function capacityColor(capacity) {
  const c = Math.min(1, Math.max(0, Number(capacity) || 0));
  // Green (130) to amber (45) over 0..0.5, amber to red (0) over 0.5..0.9.
  const hue = c <= 0.5 ? 130 - (c / 0.5) * 85 : Math.max(0, 45 - ((c - 0.5) / 0.4) * 45);
  const light = c <= 0.5 ? 72 - c * 14 : 65 - (c - 0.5) * 3;
  return `hsl(${hue.toFixed(0)}, ${c <= 0.5 ? 60 + c * 60 : 80}%, ${light.toFixed(0)}%)`;
}

/** A capacity cell: a chip in the capacity's colour, and the value. */
export function capacityCell(capacity) {
  const chip = h('span', { class: 'chip' });
  chip.style.background = capacityColor(capacity); // CSSOM, allowed by the CSP
  return [chip, ms(capacity)];
}

/** A status badge (ACTIVE, INACTIVE, ...). */
export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

// ---------------------------------------------------------------------------------------------
// URLs

/** This page's query parameters. */
export const query = new URLSearchParams(location.search);

/** `page?k=v&...` with percent-encoded values. */
export function href(page, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const text = q.toString();
  return text ? `${page}?${text}` : page;
}

/** Percent-encodes one path segment. */
export const seg = encodeURIComponent;

/** Rewrites one query parameter of the address bar (no reload). */
export function setQuery(k, v) {
  const u = new URL(location.href);
  if (v === null || v === undefined) u.searchParams.delete(k); else u.searchParams.set(k, v);
  history.replaceState(null, '', u);
}

// ---------------------------------------------------------------------------------------------
// The API and the secret

/** Called after a secret was entered (the pollers, to refresh at once). */
const secretListeners = [];

/** Calls the API; answers the decoded JSON (or the Response with `{raw: true}`). */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const secret = sessionStorage.getItem(SECRET_KEY);
  const headers = {};
  if (secret) headers['x-tempest-secret'] = secret;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}).`);
  }
  if (resp.status === 401) {
    askForSecret(secret
      ? 'The server refused this credential (401). Enter the cluster secret or your user token again.'
      : 'This cluster needs its secret (TEMPEST_SECRET) or a user token (TEMPEST_TOKEN) to show anything.');
    throw new ApiError(401, 'missing or unknown credential');
  }
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const e = await resp.json();
      if (e && e.error) message = e.error;
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(resp.status, message);
  }
  return raw ? resp : resp.json();
}

/** Shows the secret form (if it is not shown yet) with `message`. */
export function askForSecret(message) {
  const dialog = byId('secret-dialog');
  byId('secret-message').textContent = message;
  if (!dialog.open) {
    byId('secret-input').value = '';
    dialog.showModal();
  }
}

function secretDialogOpen() {
  return document.getElementById('secret-dialog')?.open ?? false;
}

function buildSecretDialog() {
  const input = h('input', {
    id: 'secret-input', type: 'password', autocomplete: 'current-password', required: true,
    name: 'secret',
  });
  const form = h('form', { method: 'dialog', id: 'secret-form' },
    // Password managers (and Chromium's form checks) expect a user name next to a password.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'tempest', hidden: true }),
    h('h3', null, 'Cluster secret'),
    h('p', { id: 'secret-message' }),
    h('label', { for: 'secret-input' }, 'Secret (kept in this browser tab only)'),
    input,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'secret-submit' }, 'Connect')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!input.value) return;
    sessionStorage.setItem(SECRET_KEY, input.value);
    byId('secret-dialog').close();
    for (const listener of secretListeners) listener();
  });
  const dialog = h('dialog', { id: 'secret-dialog' }, form);
  // Escape would leave the page without data and without the form: keep it open.
  dialog.addEventListener('cancel', (ev) => ev.preventDefault());
  document.body.append(dialog);
}

// ---------------------------------------------------------------------------------------------
// Page chrome and polling

/**
 * Sets up the header: breadcrumbs `[[text, href], ..., [text]]`, the live indicator and the
 * "forget secret" button.
 */
export function chrome(crumbs) {
  buildSecretDialog();
  const nav = byId('crumbs');
  const parts = [];
  crumbs.forEach(([text, link], i) => {
    if (i) parts.push(h('span', { class: 'sep' }, '›'));
    parts.push(link ? h('a', { href: link }, text) : h('span', { class: 'here' }, text));
  });
  put(nav, parts);
  document.title = `${crumbs[crumbs.length - 1][0]} · Tempest`;
  byId('forget').addEventListener('click', () => {
    sessionStorage.removeItem(SECRET_KEY);
    askForSecret('Secret forgotten. Enter it to see the cluster again.');
  });
}

function setLive(ok, text) {
  const live = byId('live');
  live.className = ok ? 'ok' : 'err';
  put(live, h('span', { class: 'dot' }), text);
}

/** Shows (or with null hides) the page's error banner: text, or text and links. */
export function banner(message) {
  const el = byId('banner');
  put(el, message ?? '');
  el.classList.toggle('hidden', !message || (Array.isArray(message) && !message.length));
}

/**
 * Runs `refresh` now and every `POLL_MS` after the previous run ends (never two at once), while
 * the secret form is closed; shows how it went in the header. Answers `{ now() }` to refresh at
 * once (after an action).
 */
export function poll(refresh) {
  let timer = null;
  let running = false;
  let again = false;
  async function tick() {
    clearTimeout(timer);
    if (running) { again = true; return; }
    if (secretDialogOpen()) { timer = setTimeout(tick, POLL_MS); return; }
    running = true;
    try {
      await refresh();
      setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setLive(false, 'waiting for the secret');
      } else if (e instanceof ApiError && e.status === 0) {
        setLive(false, 'server unreachable, retrying');
        banner(e.message);
      } else {
        setLive(false, 'error');
        banner(e.detail ?? e.message);
        if (!(e instanceof ApiError)) console.error(e);
      }
    } finally {
      running = false;
      timer = setTimeout(tick, again ? 0 : POLL_MS);
      again = false;
    }
  }
  secretListeners.push(tick);
  tick();
  return { now: tick };
}

/**
 * The window selector (10m, 3h, 1d, all time) in `container`; `onChange(window)` after a click.
 */
export function windowSelector(container, current, onChange) {
  const choices = [['600', '10 min'], ['10800', '3 h'], ['86400', '1 day'], [':all-time', 'All time']];
  const buttons = choices.map(([w, label]) => h('button', {
    type: 'button', 'aria-pressed': String(w === current), dataset: { window: w },
    onclick: () => {
      for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.window === w));
      setQuery('window', w);
      onChange(w);
    },
  }, label));
  put(container, h('span', { class: 'muted' }, 'Window'), h('span', { class: 'segmented', id: 'window' }, buttons));
}

/** The window the page shows: `?window=`, else 10 minutes. */
export function currentWindow() {
  const w = query.get('window');
  return ['600', '10800', '86400', ':all-time'].includes(w) ? w : '600';
}
