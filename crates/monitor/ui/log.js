// The log page: the tail of one worker's log (stdout and stderr), read through Nimbus's proxy to
// the worker's supervisor; refreshed every 2 s while "follow" is on, or with the button.

import { api, ApiError, banner, byId, chrome, compact, h, href, poll, put, query, seg } from './app.js';

const topology = query.get('topology') ?? '';
const host = query.get('host') ?? '';
const port = query.get('port') ?? '';

chrome([['Cluster', '/'], [topology, href('/topology.html', { id: topology })], [`log ${host}:${port}`]]);
put(byId('title'), 'Worker log ', h('span', { class: 'mono' }, `${host}:${port}`), h('span', { class: 'muted' }, ` of ${topology}`));

const pre = byId('log');
const follow = byId('follow');
const length = byId('length');
let force = true; // fetch on the next tick even when not following
let shown = null; // [size, length] of what is shown

// Colour codes of the workers' tracing output.
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

function render(text, start, size) {
  let body = text.replace(ANSI, '');
  const parts = [];
  if (start > 0) {
    // The range starts mid-line: drop the partial first line.
    const nl = body.indexOf('\n');
    body = nl >= 0 ? body.slice(nl + 1) : body;
    parts.push(h('span', { class: 'muted' }, `… the first ${compact(start)} bytes are not shown (of ${compact(size)}); choose a larger tail to see more\n`));
  }
  for (const line of body.split('\n')) {
    const level = / ERROR /.test(line) ? 'ERROR' : / WARN /.test(line) ? 'WARN' : null;
    parts.push(level ? h('span', { class: `lvl-${level}` }, `${line}\n`) : `${line}\n`);
  }
  if (!body.trim()) parts.push(h('span', { class: 'muted' }, '(the log is empty)'));
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  put(pre, parts);
  if (atBottom || shown === null) pre.scrollTop = pre.scrollHeight;
}

async function refresh() {
  if (!topology || !host || !port) {
    throw new ApiError(400, 'Which log? This page needs ?topology=&host=&port= (open it from a topology or component page).');
  }
  if (!follow.checked && !force) return;
  force = false;
  const resp = await api(
    `/api/v1/topology/${seg(topology)}/worker-log/${seg(host)}/${seg(port)}?length=${seg(length.value)}`,
    { raw: true });
  const text = await resp.text();
  const size = Number(resp.headers.get('x-log-file-size') ?? text.length);
  const start = Number(resp.headers.get('x-log-start') ?? 0);
  banner(null);
  byId('size').textContent = `log size ${(size / 1024).toFixed(1)} KiB`;
  if (shown && shown[0] === size && shown[1] === length.value) return; // unchanged: keep the selection
  render(text, start, size);
  shown = [size, length.value];
}

const poller = poll(refresh);
byId('refresh').addEventListener('click', () => { force = true; shown = null; poller.now(); });
length.addEventListener('change', () => { force = true; shown = null; poller.now(); });
follow.addEventListener('change', () => { if (follow.checked) poller.now(); });
