// The topology page: summary, actions (with confirmation), the graph, live throughput and
// latency charts, per-window stats, spouts, Kafka lag (when a spout reports partitions), bolts,
// workers and configuration.

import {
  api, ApiError, ago, badge, banner, byId, capacityCell, chrome, currentWindow, duration, h, href,
  int, ms, poll, put, query, seg, setQuery, table, windowSelector,
} from './app.js';
import { drawGraph } from './graph.js';
import { LineChart } from './chart.js';

const id = query.get('id') ?? '';
let win = currentWindow();
let sys = query.get('sys') === '1';
let details = null; // the latest answer

chrome([['Cluster', '/'], [id || '(no topology)']]);

const componentHref = (component) => href('/component.html', { topology: id, id: component, window: win });

function fact(label, value) {
  return h('div', { class: 'fact' }, h('div', { class: 'k' }, label), h('div', { class: 'v' }, value));
}

/** "boom (127.0.0.1:6700, 12 s ago)" with the worker linked to its log, or "". */
function lastError(c) {
  if (!c.lastError) return '';
  const where = c.errorHost ? `${c.errorHost}:${c.errorPort}` : '';
  return h('span', { class: 'err-text', title: c.lastError }, c.lastError.length > 80 ? `${c.lastError.slice(0, 79)}…` : c.lastError,
    where ? [' (', c.errorWorkerLogLink ? h('a', { href: c.errorWorkerLogLink }, where) : where, `, ${ago(c.errorLapsedSecs)})`] : '');
}

const stats = table(byId('stats'), [
  { title: 'Window', get: (w) => w.windowPretty ?? w.window },
  { title: 'Emitted', num: true, get: (w) => int(w.emitted) },
  { title: 'Transferred', num: true, get: (w) => int(w.transferred) },
  { title: 'Complete latency (ms)', num: true, get: (w) => ms(w.completeLatency) },
  { title: 'Acked', num: true, get: (w) => int(w.acked) },
  { title: 'Failed', num: true, get: (w) => int(w.failed) },
], { key: (w) => w.window, empty: 'No stats yet.' });

const spouts = table(byId('spouts'), [
  { title: 'Id', field: 'id', get: (c) => h('a', { href: componentHref(c.spoutId) }, c.spoutId) },
  { title: 'Executors', num: true, get: (c) => int(c.executors) },
  { title: 'Tasks', num: true, get: (c) => int(c.tasks) },
  { title: 'Emitted', num: true, field: 'emitted', get: (c) => int(c.emitted) },
  { title: 'Transferred', num: true, get: (c) => int(c.transferred) },
  { title: 'Complete latency (ms)', num: true, get: (c) => ms(c.completeLatency) },
  { title: 'Acked', num: true, field: 'acked', get: (c) => int(c.acked) },
  { title: 'Failed', num: true, get: (c) => int(c.failed) },
  { title: 'Last error', cls: 'wrap', get: lastError },
], { key: (c) => c.spoutId, empty: 'No spouts.' });

// One row per spout, topic and partition, from GET /api/v1/topology/{id}/lag (Storm's shape).
const lag = table(byId('lag'), [
  { title: 'Spout', get: (r) => h('a', { href: componentHref(r.spout) }, r.spout) },
  { title: 'Topic', get: (r) => h('span', { class: 'mono' }, r.topic) },
  { title: 'Partition', num: true, field: 'partition', get: (r) => r.partition },
  { title: 'Committed offset', num: true, field: 'committed', help: 'the next offset the group resumes from (none: nothing committed yet)',
    get: (r) => (r.committed >= 0 ? int(r.committed) : h('span', { class: 'muted' }, 'none')) },
  { title: 'Log-end offset', num: true, field: 'logEnd', help: 'the offset after the last record, as of the spout task\'s last fetch',
    get: (r) => int(r.logEnd) },
  { title: 'Lag', num: true, field: 'lag', help: 'records not yet committed: log end − committed offset', get: (r) => int(r.lag) },
  { title: '', cls: 'wrap', get: (r) => (r.error ? h('span', { class: 'err-text' }, r.error) : '') },
], { key: (r) => `${r.spout}/${r.topic}/${r.partition}`, empty: 'No partitions reported.' });

/** The lag endpoint's answer as sorted rows; a spout with `errorInfo` (Storm) gives one row. */
function lagRows(answer) {
  const rows = [];
  for (const [spout, s] of Object.entries(answer ?? {})) {
    if (s.errorInfo) rows.push({ spout, topic: '', partition: '', committed: -1, logEnd: null, lag: null, error: s.errorInfo });
    for (const [topic, parts] of Object.entries(s.spoutLagResult ?? {})) {
      for (const [partition, o] of Object.entries(parts)) {
        rows.push({
          spout, topic, partition: Number(partition),
          committed: o.consumerCommittedOffset, logEnd: o.logHeadOffset, lag: o.lag,
        });
      }
    }
  }
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  return rows.sort((a, b) => cmp(a.spout, b.spout) || cmp(a.topic, b.topic) || a.partition - b.partition);
}

/** Shows the lag panel only for topologies with a spout that reports partitions. */
function renderLag(answer) {
  const panel = byId('lag-panel');
  const error = byId('lag-error');
  if (answer instanceof Error) {
    // Only the lag is missing: say so in its panel (if shown) and keep the last rows.
    put(error, `Cannot read the lag: ${answer.message}`);
    error.classList.remove('hidden');
    return;
  }
  error.classList.add('hidden');
  const rows = lagRows(answer);
  panel.classList.toggle('hidden', !rows.length);
  lag.update(rows);
}

const bolts = table(byId('bolts'), [
  { title: 'Id', field: 'id', get: (c) => h('a', { href: componentHref(c.boltId) }, c.boltId) },
  { title: 'Executors', num: true, get: (c) => int(c.executors) },
  { title: 'Tasks', num: true, get: (c) => int(c.tasks) },
  { title: 'Emitted', num: true, field: 'emitted', get: (c) => int(c.emitted) },
  { title: 'Transferred', num: true, get: (c) => int(c.transferred) },
  { title: 'Capacity', num: true, get: (c) => capacityCell(c.capacity), help: 'share of the last interval spent executing; near 1 = saturated' },
  { title: 'Execute latency (ms)', num: true, get: (c) => ms(c.executeLatency) },
  { title: 'Executed', num: true, field: 'executed', get: (c) => int(c.executed) },
  { title: 'Process latency (ms)', num: true, get: (c) => ms(c.processLatency) },
  { title: 'Acked', num: true, get: (c) => int(c.acked) },
  { title: 'Failed', num: true, get: (c) => int(c.failed) },
  { title: 'Held', num: true, get: (c) => int(c.held ?? 0), help: 'tuples held now in windows (windowed bolts), not yet acked' },
  { title: 'Late', num: true, get: (c) => int(c.late ?? 0), help: 'tuples that arrived below the watermark (event-time windows)' },
  { title: 'Last error', cls: 'wrap', get: lastError },
], { key: (c) => c.boltId, empty: 'No bolts.' });

const workers = table(byId('workers'), [
  { title: 'Worker', get: (w) => h('span', { class: 'mono' }, `${w.host}:${w.port}`) },
  { title: 'Supervisor', get: (w) => h('span', { class: 'mono' }, w.supervisorId) },
  { title: 'Components', cls: 'wrap', get: (w) => (w.components ?? []).map((c, i) => [i ? ', ' : '',
    h('a', { href: componentHref(c) }, c),
    w.componentNumTasks?.[c] ? h('span', { class: 'muted' }, ` ×${w.componentNumTasks[c]}`) : '']) },
  { title: 'Executors', num: true, get: (w) => int(w.executorsTotal ?? w.executors) },
  { title: 'Last heartbeat', num: true, get: (w) => w.lastHeartbeatSecs === null || w.lastHeartbeatSecs === undefined ? 'not yet' : ago(w.lastHeartbeatSecs) },
  { title: 'Log', get: (w) => h('a', { href: w.workerLogLink || w.logLink }, 'log') },
], { key: (w) => `${w.host}:${w.port}`, empty: 'No workers (not scheduled).' });

const config = table(byId('config'), [
  { title: 'Key', get: ([k]) => h('span', { class: 'mono' }, k) },
  { title: 'Value', cls: 'wrap', get: ([, v]) => h('span', { class: 'mono' }, typeof v === 'string' ? v : JSON.stringify(v)) },
], { empty: 'Defaults only.' });

// ---------------------------------------------------------------------------------------------
// Live charts from the tasks' cumulative counters (what workers report), sampled at each poll.

const SPAN_MS = 5 * 60 * 1000;
const RATE_OVER_MS = 8000; // rates over ~8 s: smooth, yet live
const samples = []; // [{t, tasks: Map(taskId -> task)}]
const ratePoints = [];
const latencyPoints = [];
const rateChart = new LineChart(byId('chart-rate'), {
  series: [{ name: 'spouts emitted/s', cls: 's0' }, { name: 'trees completed/s', cls: 's1' }, { name: 'bolts executed/s', cls: 's2' }],
  spanMs: SPAN_MS,
});
const latencyChart = new LineChart(byId('chart-latency'), {
  series: [{ name: 'complete latency (ms)', cls: 's0' }, { name: 'unused', cls: 's1' }, { name: 'process latency (ms)', cls: 's2' }],
  spanMs: SPAN_MS,
});

function sample(d, spoutIds) {
  const now = Date.now();
  samples.push({ t: now, tasks: new Map((d.tasks ?? []).map((t) => [t.task_id, t])) });
  while (samples.length && samples[0].t < now - SPAN_MS - RATE_OVER_MS) samples.shift();
  // The newest sample at least RATE_OVER_MS old.
  let old = null;
  for (const smp of samples) if (smp.t <= now - RATE_OVER_MS) old = smp;
  if (!old) return;
  const dt = (now - old.t) / 1000;
  const sum = { emitted: 0, acked: 0, executed: 0, completeMs: 0, processMs: 0 };
  let matched = 0;
  for (const [taskId, t] of samples[samples.length - 1].tasks) {
    const o = old.tasks.get(taskId);
    // A task that moved or restarted (counters went down) is left out of this interval.
    if (!o || o.host !== t.host || o.port !== t.port || t.emitted < o.emitted || t.acked < o.acked || t.executed < o.executed) continue;
    matched++;
    if (spoutIds.has(t.component)) {
      sum.emitted += t.emitted - o.emitted;
      const dAcked = t.acked - o.acked;
      sum.acked += dAcked;
      sum.completeMs += t.complete_latency_ms * t.acked - o.complete_latency_ms * o.acked;
    } else if (!t.component.startsWith('__')) {
      const dExec = t.executed - o.executed;
      sum.executed += dExec;
      sum.processMs += t.process_latency_ms * t.executed - o.process_latency_ms * o.executed;
    }
  }
  if (!matched) return; // no task reported in both samples: no rate to tell
  ratePoints.push({ t: now, v: [sum.emitted / dt, sum.acked / dt, sum.executed / dt] });
  latencyPoints.push({
    t: now,
    v: [sum.acked > 0 ? Math.max(0, sum.completeMs / sum.acked) : null, null,
      sum.executed > 0 ? Math.max(0, sum.processMs / sum.executed) : null],
  });
  for (const pts of [ratePoints, latencyPoints]) while (pts.length && pts[0].t < now - SPAN_MS) pts.shift();
}

function drawCharts() {
  rateChart.draw(ratePoints);
  latencyChart.draw(latencyPoints);
}

// ---------------------------------------------------------------------------------------------
// Actions

const ACTIONS = {
  activate: { label: 'Activate', text: 'Spouts start emitting again.' },
  deactivate: { label: 'Deactivate', text: 'Spouts stop emitting; tuples in flight are still processed. Activate resumes.' },
  rebalance: {
    label: 'Rebalance', wait: true,
    text: 'Spouts are deactivated for the wait time (so tuples in flight can complete), then the topology is rescheduled with the workers and parallelism below and returns to its state.',
  },
  kill: {
    label: 'Kill', wait: true, danger: true,
    text: 'Spouts are deactivated for the wait time, then every worker stops and the topology is removed. This cannot be undone.',
  },
};

function allowed(action, status) {
  switch (action) {
    case 'activate': return status === 'INACTIVE';
    case 'deactivate': return status === 'ACTIVE';
    case 'rebalance': return status === 'ACTIVE' || status === 'INACTIVE';
    case 'kill': return status !== 'KILLED';
    default: return false;
  }
}

function showAnswer(ok, text) {
  const el = byId('answer');
  el.className = `answer ${ok ? 'ok' : 'err'}`;
  el.textContent = text;
}

/** The confirmation dialog of `action`; resolves to its request (path, body) or null. */
function confirmAction(action) {
  const a = ACTIONS[action];
  const timeout = Number(details?.msgTimeout ?? details?.configuration?.['topology.message.timeout.secs'] ?? 30);
  const wait = h('input', { type: 'number', id: 'confirm-wait', min: 0, step: 1, value: timeout });
  const workersIn = h('input', { type: 'number', id: 'confirm-workers', min: 1, step: 1, placeholder: `${details?.requestedWorkers ?? ''} (unchanged)` });
  const components = [...(details?.spouts ?? []).map((c) => [c.spoutId, c]), ...(details?.bolts ?? []).map((c) => [c.boltId, c])]
    .filter(([cid]) => !cid.startsWith('__'));
  const parIns = components.map(([cid, c]) => [cid, h('input', {
    type: 'number', min: 1, max: c.tasks, step: 1, placeholder: `${c.executors} (max ${c.tasks})`, dataset: { component: cid },
  })]);
  const msg = h('p', { class: 'msg' });
  const ok = h('button', { type: 'submit', id: 'confirm-ok', class: a.danger ? 'danger primary' : 'primary' }, a.label);
  const cancel = h('button', { type: 'button', id: 'confirm-cancel' }, 'Cancel');
  const form = h('form', { method: 'dialog' },
    h('h3', null, `${a.label} ${id}?`),
    h('p', null, a.text),
    a.wait ? [h('label', { for: 'confirm-wait' }, 'Wait time (seconds)'), wait] : null,
    action === 'rebalance' ? [
      h('label', { for: 'confirm-workers' }, 'Workers'), workersIn,
      h('label', null, 'Executors per component (empty: unchanged)'),
      h('div', { class: 'par' }, parIns.map(([cid, input]) => [h('label', null, cid), input])),
    ] : null,
    msg,
    h('div', { class: 'row' }, cancel, ok));
  const dialog = h('dialog', { id: 'confirm', dataset: { action } }, form);
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    cancel.addEventListener('click', () => done(null));
    dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); done(null); });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let path = `/api/v1/topology/${seg(id)}/${action}`;
      let body;
      if (a.wait) {
        const w = Number(wait.value);
        if (!Number.isInteger(w) || w < 0) { msg.textContent = 'The wait time is a whole number of seconds.'; return; }
        path += `/${w}`;
      }
      if (action === 'rebalance') {
        body = { parallelism: {} };
        if (workersIn.value !== '') body.workers = Number(workersIn.value);
        for (const [cid, input] of parIns) if (input.value !== '') body.parallelism[cid] = Number(input.value);
      }
      done({ path, body });
    });
  });
}

async function act(action) {
  const request = await confirmAction(action);
  if (!request) return;
  for (const b of document.querySelectorAll('.actions button')) b.disabled = true;
  try {
    const answer = await api(request.path, { method: 'POST', body: request.body });
    showAnswer(true, `${ACTIONS[action].label}: ${answer.state}${answer.message ? ` — ${answer.message}` : ''}`);
  } catch (e) {
    showAnswer(false, `${ACTIONS[action].label} refused: ${e.message}`);
  } finally {
    poller.now();
  }
}

for (const action of Object.keys(ACTIONS)) {
  byId(`action-${action}`).addEventListener('click', () => act(action));
}

// ---------------------------------------------------------------------------------------------
// Rendering

function render(d) {
  put(byId('title'), d.name, badge(d.status));
  put(byId('facts'),
    fact('Uptime', d.uptime ?? duration(d.uptimeSeconds)),
    fact('Workers', [int(d.workersTotal), h('small', null, ` / ${int(d.requestedWorkers)} asked`)]),
    fact('Executors', int(d.executorsTotal)),
    fact('Tasks', int(d.tasksTotal)),
    fact('Message timeout', d.msgTimeout !== undefined ? `${d.msgTimeout}s` : '–'),
    ...(d.lastCheckpoint != null ? [fact('Last checkpoint', String(d.lastCheckpoint))] : []),
    fact('Assignment', d.assignment ? `v${d.assignment.version}` : 'none'));
  byId('schedinfo').textContent = d.schedulerInfo ?? '';
  for (const action of Object.keys(ACTIONS)) byId(`action-${action}`).disabled = !allowed(action, d.status);
  const hint = win === ':all-time' ? 'all time' : `last ${d.windowHint ?? win}`;
  for (const el of document.querySelectorAll('.window-hint')) el.textContent = hint;

  drawGraph(byId('graph'), d.graph, componentHref);
  stats.update(d.topologyStats ?? []);
  spouts.update(d.spouts ?? []);
  bolts.update(d.bolts ?? []);
  workers.update(d.workers ?? []);
  config.update(Object.entries(d.configuration ?? {}).sort(([a], [b]) => a.localeCompare(b)));
  sample(d, new Set((d.spouts ?? []).map((c) => c.spoutId)));
  drawCharts();
}

async function refresh() {
  if (!id) throw new ApiError(400, 'No topology given: open one from the cluster page.');
  let lagAnswer;
  try {
    [details, lagAnswer] = await Promise.all([
      api(`/api/v1/topology/${seg(id)}?window=${seg(win)}&sys=${sys ? 'true' : 'false'}`),
      api(`/api/v1/topology/${seg(id)}/lag`).catch((e) => (e instanceof ApiError && e.status !== 401 ? e : Promise.reject(e))),
    ]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      for (const b of document.querySelectorAll('.actions button')) b.disabled = true;
      put(byId('title'), id, badge('GONE'));
      document.body.classList.add('stale');
      throw new ApiError(404, e.message, [`${e.message}. It may have been killed. `, h('a', { href: '/' }, 'Back to the cluster')]);
    }
    throw e;
  }
  banner(null);
  document.body.classList.remove('stale');
  render(details);
  renderLag(lagAnswer);
}

const poller = poll(refresh);

windowSelector(byId('window-sel'), win, (w) => { win = w; poller.now(); });
const sysBox = byId('sys');
sysBox.checked = sys;
sysBox.addEventListener('change', () => {
  sys = sysBox.checked;
  setQuery('sys', sys ? '1' : null);
  poller.now();
});
window.addEventListener('resize', () => { if (details) { drawGraph(byId('graph'), details.graph, componentHref); drawCharts(); } });
