// The component page: its stats per window, per worker and per task (each worker linked to its
// log), and its recent errors with time and host:port.

import {
  api, ApiError, ago, badge, banner, byId, capacityCell, chrome, currentWindow, h, href, int, ms,
  poll, put, query, seg, table, when, windowSelector,
} from './app.js';

const topology = query.get('topology') ?? '';
const id = query.get('id') ?? '';
let win = currentWindow();

chrome([['Cluster', '/'], [topology, href('/topology.html', { id: topology })], [id || '(no component)']]);
document.title = `${id} · ${topology} · Tempest`;

function fact(label, value) {
  return h('div', { class: 'fact' }, h('div', { class: 'k' }, label), h('div', { class: 'v' }, value));
}

const worker = (r) => h('a', { href: r.workerLogLink || r.logLink, title: 'worker log' }, `${r.host}:${r.port}`);

/** Columns shared by the three tables; spouts show complete latency, bolts the rest. */
function statColumns(isSpout) {
  return isSpout
    ? [
      { title: 'Emitted', num: true, field: 'emitted', get: (r) => int(r.emitted) },
      { title: 'Transferred', num: true, get: (r) => int(r.transferred) },
      { title: 'Complete latency (ms)', num: true, get: (r) => ms(r.completeLatency) },
      { title: 'Acked', num: true, field: 'acked', get: (r) => int(r.acked) },
      { title: 'Failed', num: true, get: (r) => int(r.failed) },
    ]
    : [
      { title: 'Emitted', num: true, field: 'emitted', get: (r) => int(r.emitted) },
      { title: 'Transferred', num: true, get: (r) => int(r.transferred) },
      { title: 'Capacity', num: true, get: (r) => capacityCell(r.capacity) },
      { title: 'Execute latency (ms)', num: true, get: (r) => ms(r.executeLatency) },
      { title: 'Executed', num: true, field: 'executed', get: (r) => int(r.executed) },
      { title: 'Process latency (ms)', num: true, get: (r) => ms(r.processLatency) },
      { title: 'Acked', num: true, get: (r) => int(r.acked) },
      { title: 'Failed', num: true, get: (r) => int(r.failed) },
      { title: 'Held', num: true, get: (r) => int(r.held ?? 0) },
      { title: 'Late', num: true, get: (r) => int(r.late ?? 0) },
    ];
}

/** A spout's failure counts (`failedByReason`), one row per reason. */
const FAILURE_REASONS = [
  ['timeout', 'Timed out', 'no outcome within the message timeout'],
  ['failed', 'Failed by a bolt', 'a bolt called collector.fail'],
  ['error', 'Bolt error', "a bolt's execute returned an error"],
  ['panic', 'Bolt panic', "a bolt's execute panicked"],
  ['undelivered', 'Undelivered', 'the worker of a task was unreachable, left or dropped the connection'],
];

function failureRows(counts) {
  return FAILURE_REASONS.map(([key, title, meaning]) => ({ key, title, meaning, count: counts?.[key] ?? 0 }));
}

let tables = null; // built once the component's type is known

function build(isSpout) {
  const cols = statColumns(isSpout);
  return {
    isSpout,
    stats: table(byId('stats'), [{ title: 'Window', get: (r) => r.windowPretty ?? r.window }, ...cols], { key: (r) => r.window }),
    workers: table(byId('workers'), [
      { title: 'Worker (log)', get: worker },
      { title: 'Supervisor', get: (r) => h('span', { class: 'mono' }, r.supervisorId) },
      { title: 'Executors', num: true, get: (r) => int(r.executors) },
      { title: 'Tasks', num: true, get: (r) => int(r.tasks) },
      ...cols,
    ], { key: (r) => `${r.host}:${r.port}`, empty: 'Not running on any worker.' }),
    tasks: table(byId('tasks'), [
      { title: 'Task', num: true, get: (r) => r.taskId ?? r.id },
      { title: 'Executor', get: (r) => h('span', { class: 'mono' }, r.executorId ?? r.id) },
      { title: 'Worker (log)', get: worker },
      { title: 'Last heartbeat', num: true, get: (r) => (r.lastHeartbeatSecs === null || r.lastHeartbeatSecs === undefined ? 'never' : ago(r.lastHeartbeatSecs)) },
      ...cols,
    ], { key: (r) => r.taskId ?? r.id, empty: 'No tasks.' }),
    failures: table(byId('failures'), [
      { title: 'Reason', get: (r) => r.title },
      { title: 'Trees', num: true, get: (r) => int(r.count) },
      { title: 'Meaning', cls: 'wrap', get: (r) => r.meaning },
    ], { key: (r) => r.key }),
    errors: table(byId('errors'), [
      { title: 'Time', get: (e) => h('span', { title: `${ago(e.errorLapsedSecs)}` }, when(e.errorTime ?? e.time)) },
      { title: 'Ago', num: true, get: (e) => ago(e.errorLapsedSecs) },
      { title: 'Task', num: true, get: (e) => e.taskId ?? '' },
      { title: 'Worker (log)', get: (e) => (e.errorHost ? h('a', { href: e.errorWorkerLogLink }, `${e.errorHost}:${e.errorPort}`) : '–') },
      { title: 'Error', cls: 'wrap err-text mono', get: (e) => e.error },
    ], { empty: 'No errors reported.' }),
  };
}

async function refresh() {
  if (!topology || !id) throw new ApiError(400, 'No component given: open one from its topology page.');
  let c;
  try {
    c = await api(`/api/v1/topology/${seg(topology)}/component/${seg(id)}?window=${seg(win)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      throw new ApiError(404, e.message, [`${e.message}. `, h('a', { href: href('/topology.html', { id: topology }) }, `Back to ${topology}`)]);
    }
    throw e;
  }
  banner(null);
  const isSpout = c.componentType === 'spout';
  if (!tables || tables.isSpout !== isSpout) tables = build(isSpout);
  put(byId('title'), c.id, badge(c.componentType ?? ''));
  put(byId('facts'),
    fact('Topology', h('a', { href: href('/topology.html', { id: topology, window: win }) }, c.name ?? topology)),
    fact('Status', badge(c.topologyStatus)),
    fact('Executors', int(c.executors)),
    fact('Tasks', int(c.tasks)),
    fact('Errors', int((c.componentErrors ?? []).length)));
  const hint = win === ':all-time' ? 'all time' : `last ${c.windowHint ?? win}`;
  for (const el of document.querySelectorAll('.window-hint')) el.textContent = hint;
  tables.stats.update((isSpout ? c.spoutSummary : c.boltStats) ?? []);
  byId('failures-panel').classList.toggle('hidden', !isSpout);
  if (isSpout) tables.failures.update(failureRows(c.failedByReason));
  tables.workers.update(c.workerStats ?? []);
  tables.tasks.update(c.executorStats ?? []);
  tables.errors.update(c.componentErrors ?? []);
}

const poller = poll(refresh);
windowSelector(byId('window-sel'), win, (w) => { win = w; poller.now(); });
