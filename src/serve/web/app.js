// The service's web page: pick or drop a photo, POST it to /localize, show the estimate on a map of
// the database positions and the top matches as thumbnails; and the evaluation explorer (GET /eval).
// Plain browser JavaScript, no build step. The map has no tiles (the machine may be offline): UTM
// metres are drawn directly with Leaflet's flat CRS, y = north, x = east, shifted to the database's
// south-west corner so the numbers stay small.
/* global L */
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
};
const fmt = (x, digits = 1) => (x === null || x === undefined ? '–' : Number(x).toFixed(digits));

let info = null;
let map = null;
let origin = [0, 0];
let resultLayer = null;
const toLatLng = (east, north) => [north - origin[1], east - origin[0]];

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ?? `${url}: HTTP ${r.status}`);
  return body;
}

// ---- tabs
for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => {
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t === tab);
    for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== tab.dataset.view;
    if (tab.dataset.view === 'localize') map?.invalidateSize();
  });
}

// ---- the index and its map
async function loadIndex() {
  info = await getJson('/index');
  const search = info.search.kind === 'exact' ? 'exact search' : `HNSW ${info.search.quantization}`;
  $('#index-info').textContent = `${info.count} database images · ${info.model.backbone} + ${info.model.aggregation} (${info.dim}-d) · ${search}` +
    (info.dataset ? ` · ${info.dataset.name}/${info.dataset.split}` : '');
  const positions = await getJson('/index/positions');
  origin = info.bounds ? [info.bounds.east[0], info.bounds.north[0]] : [0, 0];
  map = L.map('map', { crs: L.CRS.Simple, minZoom: -12, maxZoom: 6, preferCanvas: true, attributionControl: false });
  const points = L.layerGroup().addTo(map);
  positions.ids.forEach((id, i) => {
    L.circleMarker(toLatLng(positions.east[i], positions.north[i]), { radius: 2, color: '#5b6b7b', weight: 1, fillOpacity: 0.6 })
      .bindTooltip(`database ${id}: ${fmt(positions.east[i], 1)} E, ${fmt(positions.north[i], 1)} N`)
      .addTo(points);
  });
  if (info.bounds) {
    const b = info.bounds;
    const pad = Math.max(10, 0.05 * Math.max(b.east[1] - b.east[0], b.north[1] - b.north[0]));
    map.fitBounds([toLatLng(b.east[0] - pad, b.north[0] - pad), toLatLng(b.east[1] + pad, b.north[1] + pad)]);
  }
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  $('#map').dataset.points = String(positions.ids.length);
  if (info.evaluation) {
    $('#eval-tab').hidden = false;
    loadEvaluation().catch((e) => { $('#eval-summary').textContent = `evaluation: ${e.message}`; });
  }
}

// ---- localize a photo
function setStatus(text, error = false) {
  $('#status').textContent = text;
  $('#status').classList.toggle('error', error);
}

async function localize(file) {
  if (!file) return;
  setStatus(`localizing ${file.name}…`);
  $('#preview').src = URL.createObjectURL(file);
  $('#preview').hidden = false;
  const form = new FormData();
  form.append('image', file, file.name);
  let body;
  try {
    const r = await fetch('/localize', { method: 'POST', body: form });
    body = await r.json();
    if (!r.ok) throw new Error(body.error ?? `HTTP ${r.status}`);
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  showResult(body);
}

function showResult(body) {
  const est = body.estimate;
  const agreeing = new Set(est ? est.agreeing : []);
  setStatus(`${body.file}: ${body.matches.length} matches in ${fmt(body.timings.queueAndInferenceMs, 0)} ms`);
  const box = $('#estimate');
  box.hidden = !est;
  if (est) {
    box.replaceChildren(
      el('strong', { text: `Estimated position: ${fmt(est.east, 1)} E, ${fmt(est.north, 1)} N` }), el('br'),
      `confidence ${fmt(100 * est.confidence, 0)}% · ${est.agreeing.length} of ${body.matches.length} matches agree within ${est.radius} m · spread ${fmt(est.spreadMetres, 1)} m`,
    );
  }
  $('#matches').replaceChildren(...body.matches.map((m) => el('figure', { class: `match${agreeing.has(m.id) ? ' agrees' : ''}` },
    el('img', { src: m.thumbnail, alt: `database ${m.id}` }),
    el('figcaption', { text: `#${m.rank + 1} · d ${fmt(m.distance, 3)} · ${fmt(m.east, 0)} E ${fmt(m.north, 0)} N` }))));
  if (resultLayer) resultLayer.remove();
  resultLayer = L.layerGroup().addTo(map);
  const svg = L.svg(); // DOM elements (not canvas) for the few result markers: they can be styled and found
  for (const m of body.matches) {
    L.circleMarker(toLatLng(m.east, m.north), { renderer: svg, radius: 5, color: agreeing.has(m.id) ? '#2a9d3f' : '#f28e2b', weight: 2, className: 'match-marker' })
      .bindTooltip(`#${m.rank + 1}: database ${m.id}, d ${fmt(m.distance, 3)}`).addTo(resultLayer);
  }
  if (est) {
    const at = toLatLng(est.east, est.north);
    L.circle(at, { renderer: svg, radius: est.radius, color: '#d7301f', weight: 1, fill: false, dashArray: '4 4' }).addTo(resultLayer);
    L.circleMarker(at, { renderer: svg, radius: 8, color: '#d7301f', fillColor: '#d7301f', fillOpacity: 0.8, className: 'estimate' })
      .bindTooltip(`estimate: ${fmt(est.east, 1)} E, ${fmt(est.north, 1)} N (${fmt(100 * est.confidence, 0)}%)`).addTo(resultLayer);
    map.setView(at, Math.max(map.getZoom(), 0));
  }
}

const drop = $('#drop');
$('#file').addEventListener('change', (e) => localize(e.target.files[0]));
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  localize(e.dataTransfer.files[0]);
});

// ---- evaluation explorer
let evaluation = null;

async function loadEvaluation() {
  evaluation = await getJson('/eval');
  const s = evaluation.summary;
  const recalls = s.recalls ?? {};
  $('#eval-summary').replaceChildren(
    el('h2', { text: `${s.dataset?.name ?? ''}/${s.dataset?.split ?? ''}: ${evaluation.queries.length} queries, recall at ${evaluation.radius} m` }),
    el('p', { text: Object.entries(recalls).map(([n, v]) => `R@${n} ${fmt(v, 1)}`).join(' · ') }),
  );
  $('#grids').replaceChildren(...evaluation.grids.map((g) => {
    const a = el('a', { href: `/eval/grids/${g}`, target: '_blank', text: g });
    a.addEventListener('click', (e) => {
      e.preventDefault();
      const view = $('#grid-view');
      view.querySelector('img').src = a.href;
      view.querySelector('figcaption').replaceChildren(el('a', { href: a.href, target: '_blank', text: `open ${g}` }));
      view.hidden = false;
    });
    return el('li', {}, a);
  }));
  renderTable();
}

function renderTable() {
  const failuresOnly = $('#failures-only').checked;
  const rows = evaluation.queries.filter((q) => !failuresOnly || q.firstCorrectRank !== 0);
  $('#eval-count').textContent = `${rows.length} of ${evaluation.queries.length} queries shown`;
  $('#eval-table tbody').replaceChildren(...rows.map((q) => {
    const right = q.firstCorrectRank === 0;
    const tr = el('tr', { class: right ? 'right' : 'wrong', 'data-query': String(q.query) },
      el('td', { text: String(q.query) }),
      el('td', {}, el('img', { src: `/eval/query/${q.query}/thumbnail`, loading: 'lazy', alt: q.file })),
      el('td', { class: 'result', text: right ? 'right' : 'wrong' }),
      el('td', { text: q.firstCorrectRank < 0 ? 'none' : String(q.firstCorrectRank + 1) }),
      el('td', { text: fmt(q.errorMetres, 1) }));
    tr.addEventListener('click', () => showQuery(q));
    return tr;
  }));
}

function showQuery(q) {
  $('#eval-detail').replaceChildren(
    el('h2', { text: `query ${q.query}` }),
    el('p', { text: `${q.file} · ${q.positives} database images within ${evaluation.radius} m` }),
    el('div', { class: 'row' },
      el('figure', {}, el('img', { src: `/eval/query/${q.query}/thumbnail`, alt: 'query' }), el('figcaption', { text: 'query' })),
      ...q.predictions.map((p) => el('figure', { class: p.correct ? 'correct' : 'wrong' },
        el('img', { src: `/eval/query/${q.query}/prediction/${p.rank}/thumbnail`, alt: `rank ${p.rank + 1}` }),
        el('figcaption', { text: `#${p.rank + 1} · ${fmt(p.errorMetres, 0)} m` })))),
  );
}

$('#failures-only').addEventListener('change', renderTable);

loadIndex().catch((e) => setStatus(`cannot load the index: ${e.message}`, true));
