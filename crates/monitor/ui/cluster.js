// The cluster page: totals, slots, topologies (linked to their pages), Nimbus hosts and supervisors.

import { api, banner, badge, byId, chrome, duration, h, href, int, poll, put, table, ago } from './app.js';

chrome([['Cluster']]);

function fact(label, value, extra) {
  return h('div', { class: 'fact' }, h('div', { class: 'k' }, label), h('div', { class: 'v' }, value), extra);
}

const topologies = table(byId('topologies'), [
  { title: 'Name', field: 'name', get: (t) => h('a', { href: href('/topology.html', { id: t.id }) }, t.name) },
  { title: 'Status', field: 'status', get: (t) => badge(t.status) },
  { title: 'Uptime', num: true, get: (t) => t.uptime ?? duration(t.uptimeSeconds) },
  { title: 'Workers', num: true, get: (t) => `${int(t.workersTotal)} / ${int(t.requestedWorkers)}`, help: 'assigned / requested' },
  { title: 'Executors', num: true, get: (t) => int(t.executorsTotal) },
  { title: 'Tasks', num: true, get: (t) => int(t.tasksTotal) },
  { title: 'Scheduler', cls: 'wrap muted', get: (t) => t.schedulerInfo || '' },
], { key: (t) => t.id, empty: 'No topologies. Submit one with `tempest submit`.' });

const nimbuses = table(byId('nimbuses'), [
  { title: 'Host', get: (n) => h('span', { class: 'mono' }, `${n.host}:${n.port}`) },
  { title: 'Status', get: (n) => h('span', { class: `badge ${n.status === 'Offline' ? 'dead' : 'alive'}` }, n.status) },
  { title: 'Uptime', num: true, get: (n) => n.nimbusUpTime },
  { title: 'Version', get: (n) => n.version },
], { key: (n) => `${n.host}:${n.port}`, empty: 'No Nimbus answered.' });

const supervisors = table(byId('supervisors'), [
  { title: 'Id', get: (v) => h('span', { class: 'mono' }, v.id) },
  { title: 'Host', get: (v) => v.host },
  { title: 'State', get: (v) => h('span', { class: `badge ${v.alive ? 'alive' : 'dead'}` }, v.alive ? 'alive' : 'dead') },
  { title: 'Uptime', num: true, get: (v) => v.uptime ?? duration(v.uptimeSeconds) },
  { title: 'Slots used', num: true, get: (v) => `${int(v.slotsUsed)} / ${int(v.slotsTotal)}` },
  { title: 'Last heartbeat', num: true, get: (v) => ago(v.last_heartbeat_secs) },
  { title: 'Log server', get: (v) => v.http ? h('span', { class: 'mono' }, v.http) : h('span', { class: 'muted' }, 'none') },
], { key: (v) => v.id, empty: 'No supervisor has registered yet.' });

async function refresh() {
  const [summary, topos, sups, nimbus] = await Promise.all([
    api('/api/v1/cluster/summary'),
    api('/api/v1/topology/summary'),
    api('/api/v1/supervisor/summary'),
    api('/api/v1/nimbus/summary'),
  ]);
  banner(null);
  const used = summary.slotsUsed ?? 0;
  const total = summary.slotsTotal ?? 0;
  const bar = h('div', { class: 'slotbar', title: `${used} of ${total} slots used` }, h('div'));
  bar.firstChild.style.width = `${total ? (100 * used) / total : 0}%`;
  put(byId('facts'),
    fact('Supervisors', int(summary.supervisors)),
    fact('Slots used', [int(used), h('small', null, ` / ${int(total)}`)], bar),
    fact('Slots free', int(summary.slotsFree)),
    fact('Topologies', int(summary.topologies)),
    summary.executorsTotal !== undefined ? fact('Executors', int(summary.executorsTotal)) : null,
    summary.tasksTotal !== undefined ? fact('Tasks', int(summary.tasksTotal)) : null,
    fact('Uptime', summary.nimbusUptime ?? duration(summary.nimbusUptimeSeconds)),
    summary.tempestVersion ? fact('Version', summary.tempestVersion) : null);
  topologies.update(topos.topologies ?? []);
  nimbuses.update(nimbus.nimbuses ?? []);
  supervisors.update(sups.supervisors ?? []);
}

poll(refresh);
