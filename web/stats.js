// stats.js — the Stats page: the gallery's numbers (GET /api/stats, the
// same object as GET /stats and `faceq stats`), detections per day as a bar
// chart drawn as SVG elements, and the models the server runs.
import * as api from './api.js';
import {h, s, num, bytes} from './dom.js';

function figure(value, text) {
    return h('div', {class: 'figure'}, h('span', {class: 'value'}, num(value, 0)), h('span', {class: 'meta'}, text));
}

// Bars in a 600 x 200 box (scaled to the page by CSS); a label on the first
// day, the last, and every 7th; the count of each day in its bar's <title>.
function chart(days) {
    const W = 600, H = 200, top = 16, bottom = 24, left = 8;
    const max = Math.max(1, ...days.map((d) => d.detections));
    const step = (W - left) / Math.max(1, days.length);
    const total = days.reduce((a, d) => a + d.detections, 0);
    const svg = s('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
        'aria-label': days.length ? `Detections per day from ${days[0].date} to ${days[days.length - 1].date}: ` +
            `${total} in all, at most ${max} in a day` : 'No detections per day'});
    const base = H - bottom;
    svg.append(s('line', {class: 'axis', x1: left, y1: base, x2: W, y2: base}),
        s('text', {class: 'tick', x: left, y: top - 4}, `max ${max}`));
    days.forEach((d, i) => {
        const hgt = ((base - top) * d.detections) / max;
        const x = left + i * step;
        svg.append(s('rect', {class: 'bar', x: x + 1, y: base - hgt, width: Math.max(1, step - 2), height: hgt},
            s('title', {}, `${d.date}: ${d.detections} detection${d.detections === 1 ? '' : 's'}`)));
        if (i === 0 || i === days.length - 1 || (i % 7 === 0 && days.length - 1 - i >= 4))
            svg.append(s('text', {class: 'tick', x: i === 0 ? left : i === days.length - 1 ? W - 2 : x + step / 2, y: H - 6,
                'text-anchor': i === 0 ? 'start' : i === days.length - 1 ? 'end' : 'middle'}, d.date.slice(5)));
    });
    return svg;
}

function definitions(pairs) {
    return h('dl', {class: 'pairs'}, pairs.filter(([, v]) => v !== undefined).map(([k, v]) =>
        [h('dt', {}, k), h('dd', {class: 'path'}, v === null ? '—' : String(v))]));
}

export async function statsView(el, {isCurrent}) {
    const st = await api.get('/api/stats');
    if (!isCurrent()) return;
    const det = st.detections || {};
    const models = st.models || {};
    const emb = st.embedder || {};
    el.append(
        h('h1', {tabindex: -1}, 'Stats'),
        h('div', {class: 'figures'},
            figure(st.persons.known, 'known persons'),
            figure(st.persons.unknown, 'strangers'),
            figure(st.samples, 'enrolled faces'),
            figure(st.images, 'photos'),
            figure(det.total, 'detections')),
        h('p', {class: 'meta'}, `Detections: ${det.known ?? 0} known, ${det.unknown ?? 0} unknown, ` +
            `${det.ambiguous ?? 0} ambiguous; last ${det.last || '—'}.`),
        h('h2', {}, 'Detections per day (UTC)'),
        chart(st.detections_per_day || []),
        h('h2', {}, 'Gallery'),
        definitions([
            ['engine', st.database && st.database.engine],
            ['size', st.database ? bytes(st.database.bytes) : undefined],
            ['schema version', st.database && st.database.schema_version],
            ['embedder installed', emb.installed],
            ['embedders of the samples', (emb.gallery || []).map((g) => `${g.embedder} (${g.samples} samples)`).join('; ') || '—'],
            ['mismatch', emb.mismatch ? 'yes: samples were made by another embedder' : 'no'],
        ]),
        h('h2', {}, 'Models in use'),
        definitions(Object.entries(models)));
}
