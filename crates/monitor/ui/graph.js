// The topology graph: components as boxes in layers by topological depth (spouts on the left),
// streams as arrows between them labelled with their grouping and tuples/s, each box coloured by
// its capacity so a saturated bolt shows at a glance. Input: the API's `graph` object
// ({nodes: [{id, type, executors, tasks, capacity, emittedPerSecond, executedPerSecond}],
//   edges: [{from, to, stream, grouping, tuplesPerSecond}]}).

import { s, put, compact, capacityColor } from './app.js';

const W = 160; // node width
const H = 66; // node height
const GX_MIN = 110; // horizontal gap between layers, widened to fit the edge labels
const GX_MAX = 280;
const GY = 30; // vertical gap between nodes of a layer
const PAD = 14;
const LABEL_H = 18;

/** Layers of node ids by longest path from a source; each layer ordered to limit crossings. */
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const known = new Set(ids);
  const preds = new Map(ids.map((id) => [id, []]));
  const succs = new Map(ids.map((id) => [id, []]));
  for (const e of edges) {
    if (!known.has(e.from) || !known.has(e.to) || e.from === e.to) continue;
    preds.get(e.to).push(e.from);
    succs.get(e.from).push(e.to);
  }
  // Kahn's algorithm; depth = 1 + deepest predecessor.
  const depth = new Map();
  const indeg = new Map(ids.map((id) => [id, preds.get(id).length]));
  const queue = ids.filter((id) => indeg.get(id) === 0);
  for (const id of queue) depth.set(id, 0);
  while (queue.length) {
    const id = queue.shift();
    for (const next of succs.get(id)) {
      depth.set(next, Math.max(depth.get(next) ?? 0, depth.get(id) + 1));
      indeg.set(next, indeg.get(next) - 1);
      if (indeg.get(next) === 0) queue.push(next);
    }
  }
  // A cycle cannot be declared, but should one arrive, its nodes go in a last layer.
  const maxDepth = Math.max(0, ...depth.values());
  for (const id of ids) if (!depth.has(id)) depth.set(id, maxDepth + 1);
  // Unconnected nodes (the acker: its streams are implicit) go to the right, with the sinks.
  const last = Math.max(0, ...depth.values());
  for (const id of ids) {
    if (!preds.get(id).length && !succs.get(id).length && nodes.length > 1) depth.set(id, last);
  }

  const layers = [];
  for (const id of ids) {
    const d = depth.get(id);
    (layers[d] ??= []).push(id);
  }
  const dense = layers.filter(Boolean);
  // Barycentre ordering: down, up, down.
  const pos = new Map();
  const index = () => dense.forEach((l) => l.forEach((id, i) => pos.set(id, i)));
  index();
  const sweep = (layer, neighbours) => {
    const bary = new Map(layer.map((id, i) => {
      const ns = neighbours.get(id).filter((n) => pos.has(n));
      return [id, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length : i];
    }));
    layer.sort((a, b) => bary.get(a) - bary.get(b));
    layer.forEach((id, i) => pos.set(id, i));
  };
  for (let i = 1; i < dense.length; i++) sweep(dense[i], preds);
  for (let i = dense.length - 2; i >= 0; i--) sweep(dense[i], succs);
  for (let i = 1; i < dense.length; i++) sweep(dense[i], preds);
  return dense;
}

/** Positions: {id: {x, y}} (top-left corners) and the drawing's size. */
function place(layers, GX) {
  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const height = PAD * 2 + tallest * H + (tallest - 1) * GY + LABEL_H;
  const width = PAD * 2 + layers.length * W + (layers.length - 1) * GX;
  const at = new Map();
  layers.forEach((layer, d) => {
    const layerH = layer.length * H + (layer.length - 1) * GY;
    const top = PAD + (height - PAD * 2 - LABEL_H - layerH) / 2;
    layer.forEach((id, i) => at.set(id, { x: PAD + d * (W + GX), y: top + i * (H + GY) }));
  });
  return { at, width, height };
}

function truncate(text, max) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function edgeLabel(e) {
  const rate = `${compact(e.tuplesPerSecond ?? 0)}/s`;
  return e.stream && e.stream !== 'default'
    ? `${e.stream}: ${e.grouping} · ${rate}`
    : `${e.grouping} · ${rate}`;
}

function nodeMeta(n) {
  const par = `${n.executors} exec · ${n.tasks} task${n.tasks === 1 ? '' : 's'}`;
  return n.type === 'spout'
    ? [par, `emits ${compact(n.emittedPerSecond)}/s`]
    : [par, `cap ${(Number(n.capacity) || 0).toFixed(2)} · ${compact(n.executedPerSecond)}/s in`];
}

/**
 * Draws `graph` into `svg`. Keeps the drawing (and only updates numbers and colours) while the
 * components and streams stay the same. `link(id)` is the href of a component.
 */
export function drawGraph(svg, graph, link) {
  const nodes = graph?.nodes ?? [];
  const edges = (graph?.edges ?? []).filter((e) => e.from !== e.to);
  const shape = JSON.stringify([nodes.map((n) => [n.id, n.type]),
    edges.map((e) => [e.from, e.to, e.stream, e.grouping])]);
  if (svg.dataset.shape !== shape) build(svg, nodes, edges, link);
  svg.dataset.shape = shape;
  update(svg, nodes, edges, link);
}

function build(svg, nodes, edges, link) {
  if (!nodes.length) {
    svg.setAttribute('viewBox', '0 0 400 60');
    svg.style.width = '400px';
    put(svg, s('text', { x: 10, y: 34, class: 'meta' }, 'No components reported yet.'));
    return;
  }
  const layers = layout(nodes, edges);
  // Room between layers for the longest label ("fields(word) · 123.4k/s").
  const longest = Math.max(0, ...edges.map((e) => edgeLabel({ ...e, tuplesPerSecond: 123456 }).length));
  const gx = Math.min(GX_MAX, Math.max(GX_MIN, longest * 6.1 + 34));
  const { at, width, height } = place(layers, gx);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.dataset.naturalWidth = width;
  fit(svg);

  // Spread the ends of a node's edges along its side, ordered by the other end's height.
  const outs = new Map();
  const ins = new Map();
  edges.forEach((e, i) => {
    if (!at.has(e.from) || !at.has(e.to)) return;
    (outs.get(e.from) ?? outs.set(e.from, []).get(e.from)).push(i);
    (ins.get(e.to) ?? ins.set(e.to, []).get(e.to)).push(i);
  });
  const offset = new Map();
  const spread = (groups, other, side) => {
    for (const list of groups.values()) {
      list.sort((a, b) => at.get(edges[a][other]).y - at.get(edges[b][other]).y || a - b);
      list.forEach((ei, k) => {
        const o = (k - (list.length - 1) / 2) * Math.min(14, (H - 16) / Math.max(1, list.length - 1));
        offset.set(`${ei}${side}`, o);
      });
    }
  };
  spread(outs, 'to', 'out');
  spread(ins, 'from', 'in');

  const defs = s('defs', null,
    s('marker', {
      id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse',
    }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#5e6b7c' })));
  const edgeLayer = s('g', { class: 'edges' });
  const labelLayer = s('g', { class: 'edge-labels' });
  const nodeLayer = s('g', { class: 'nodes' });

  const labels = [];
  edges.forEach((e, i) => {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (!a || !b) return;
    const x1 = a.x + W;
    const y1 = a.y + H / 2 + (offset.get(`${i}out`) ?? 0);
    const x2 = b.x - 2;
    const y2 = b.y + H / 2 + (offset.get(`${i}in`) ?? 0);
    const dx = Math.max(40, (x2 - x1) / 2);
    const d = `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`;
    edgeLayer.append(s('path', {
      class: 'edge', d, 'marker-end': 'url(#arrow)',
      dataset: { index: i, from: e.from, to: e.to, stream: e.stream },
    }, s('title', null, `${e.from} → ${e.to} (stream ${e.stream}, ${e.grouping})`)));
    // The label sits on the curve, near the consumer for edges that skip layers.
    const t = x2 - x1 > W + gx * 1.5 ? 0.75 : 0.5;
    const bx = (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * (x1 + dx) + 3 * (1 - t) * t ** 2 * (x2 - dx) + t ** 3 * x2;
    const by = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t ** 2 * y2 + t ** 3 * y2;
    const text = s('text', { x: bx, y: by + 4, 'text-anchor': 'middle' });
    const rect = s('rect', { x: bx - 40, y: by - LABEL_H / 2, width: 80, height: LABEL_H, rx: 4 });
    const g = s('g', { class: 'edge-label', dataset: { index: i } }, rect, text);
    labelLayer.append(g);
    // Above the line, so the arrow stays visible.
    labels.push({ g, rect, text, x: bx, y: by - LABEL_H / 2 - 3 });
  });

  nodes.forEach((n) => {
    const p = at.get(n.id);
    const rect = s('rect', { x: p.x, y: p.y, width: W, height: H, rx: n.type === 'spout' ? 22 : 7 });
    const meta = nodeMeta(n);
    const g = s('g', { class: `node ${n.type}`, dataset: { id: n.id } },
      s('a', { href: link(n.id) },
        s('title', null, n.id),
        rect,
        s('text', { x: p.x + W / 2, y: p.y + 22, 'text-anchor': 'middle', class: 'name' }, truncate(n.id, 17)),
        s('text', { x: p.x + W / 2, y: p.y + 40, 'text-anchor': 'middle', class: 'meta m1' }, meta[0]),
        s('text', { x: p.x + W / 2, y: p.y + 56, 'text-anchor': 'middle', class: 'meta m2' }, meta[1])));
    nodeLayer.append(g);
  });

  put(svg, defs, edgeLayer, nodeLayer, labelLayer);
  svg.__labels = labels;
}

/** Scales the drawing to the panel, down to 70 % of its natural size (then it scrolls). */
function fit(svg) {
  const natural = Number(svg.dataset.naturalWidth) || 400;
  const room = svg.parentElement?.clientWidth || natural;
  svg.style.width = `${Math.min(natural, Math.max(room, natural * 0.7))}px`;
}

function update(svg, nodes, edges, link) {
  for (const n of nodes) {
    const g = svg.querySelector(`g.node[data-id="${CSS.escape(n.id)}"]`);
    if (!g) continue;
    g.querySelector('a').setAttribute('href', link(n.id)); // it carries the current window
    g.querySelector('rect').setAttribute('fill', n.type === 'spout' && !n.capacity
      ? capacityColor(0) : capacityColor(n.capacity));
    const meta = nodeMeta(n);
    g.querySelector('.m1').textContent = meta[0];
    g.querySelector('.m2').textContent = meta[1];
    const title = `${n.id} (${n.type})\n${meta[0]}\ncapacity ${(Number(n.capacity) || 0).toFixed(3)}\n` +
      `emitted ${compact(n.emittedPerSecond)}/s, executed ${compact(n.executedPerSecond)}/s`;
    g.querySelector('title').textContent = title;
  }
  const labels = svg.__labels ?? [];
  edges.forEach((e, i) => {
    const path = svg.querySelector(`path.edge[data-index="${i}"]`);
    if (path) path.setAttribute('stroke-width', (1.4 + Math.min(3.6, Math.log10(1 + (e.tuplesPerSecond ?? 0)) * 0.9)).toFixed(2));
  });
  for (const l of labels) {
    const e = edges[Number(l.g.dataset.index)];
    l.text.textContent = edgeLabel(e);
  }
  // Size the label boxes to their text, then push overlapping labels apart vertically.
  const boxes = labels.map((l) => {
    let w;
    try { w = l.text.getComputedTextLength(); } catch { w = l.text.textContent.length * 6.4; }
    return { l, w: w + 12, x: l.x, y: l.y };
  });
  boxes.sort((a, b) => a.y - b.y);
  for (let i = 0; i < boxes.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = boxes[j];
      const b = boxes[i];
      const overlapX = Math.abs(a.x - b.x) < (a.w + b.w) / 2 + 4;
      if (overlapX && b.y - a.y < LABEL_H + 3) b.y = a.y + LABEL_H + 3;
    }
  }
  for (const b of boxes) {
    b.l.rect.setAttribute('x', b.x - b.w / 2);
    b.l.rect.setAttribute('width', b.w);
    b.l.rect.setAttribute('y', b.y - LABEL_H / 2);
    b.l.text.setAttribute('x', b.x);
    b.l.text.setAttribute('y', b.y + 4);
  }
  fit(svg);
}
