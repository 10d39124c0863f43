// models.js — Models & runs, as MLflow shows a registry: the training runs
// (status, params, metrics; sortable by any column), and each registered
// model's versions with their aliases and metrics, which one is in
// production, and deploy / roll back (confirmed first; POST, CSRF checked).
import * as api from './api.js';
import {h, append, clear, when, num} from './dom.js';
import {say, act, confirmAction, go} from './ui.js';

// Registry times are ISO 8601 strings; other routes give unix seconds.
function time(value) {
    if (typeof value === 'number') return when(value);
    if (!value) return '—';
    return String(value).replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC');
}

function pairList(obj) {
    return Object.entries(obj || {}).map(([k, v]) => `${k}=${typeof v === 'number' ? num(v, 4) : JSON.stringify(v)}`);
}

function pairs(obj) {
    return pairList(obj).join(', ') || '—';
}

// A cell of params or metrics: the first few, the rest behind "N more".
function pairsCell(obj, shown = 5) {
    const list = pairList(obj);
    if (list.length <= shown + 1) return h('td', {class: 'kv'}, list.join(', ') || '—');
    return h('td', {class: 'kv'}, list.slice(0, shown).join(', '),
        h('details', {}, h('summary', {}, `${list.length - shown} more`), list.slice(shown).join(', ')));
}

// Columns of the runs table: title and the value sorted by.
const RUN_COLUMNS = [
    ['Run', (r) => r.run_id],
    ['Experiment', (r) => r.experiment],
    ['Status', (r) => r.status],
    ['Started', (r) => r.start_time || ''],
    ['Ended', (r) => r.end_time || ''],
    ['Params', (r) => pairs(r.params)],
    ['Metrics', (r) => pairs(r.metrics)],
];

function runsTable(runs) {
    let sortBy = 3;  // newest first
    let ascending = false;
    const tbody = h('tbody', {});
    const heads = RUN_COLUMNS.map(([title], i) => {
        const button = h('button', {type: 'button', class: 'sort'}, title);
        button.addEventListener('click', () => {
            ascending = sortBy === i ? !ascending : true;
            sortBy = i;
            draw();
        });
        return h('th', {scope: 'col'}, button);
    });
    const draw = () => {
        const key = RUN_COLUMNS[sortBy][1];
        const sorted = [...runs].sort((a, b) => {
            const x = key(a), y = key(b);
            return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        heads.forEach((th, i) => {
            if (i === sortBy) th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
            else th.removeAttribute('aria-sort');
        });
        clear(tbody).append(...sorted.map((r) => h('tr', {},
            h('td', {class: 'path'}, r.run_id),
            h('td', {}, r.experiment),
            h('td', {}, h('span', {class: `badge ${String(r.status).toLowerCase()}`}, r.status)),
            h('td', {}, time(r.start_time)),
            h('td', {}, time(r.end_time)),
            pairsCell(r.params),
            pairsCell(r.metrics))));
    };
    draw();
    return h('div', {class: 'table-wrap'},
        h('table', {class: 'runs'},
            h('caption', {class: 'sr-only'}, 'Training runs; the column buttons sort'),
            h('thead', {}, h('tr', {}, heads)), tbody));
}

function modelSection(m) {
    const refresh = () => go(location.hash);
    const deployButton = (v) => {
        const b = h('button', {type: 'button'}, 'Deploy');
        b.setAttribute('aria-label', `Deploy version ${v.version} of ${m.name}`);
        b.addEventListener('click', async () => {
            if (!(await confirmAction(`Deploy version ${v.version} of ${m.name} to production? ` +
                'Servers use it once restarted.', 'Deploy'))) return;
            act(b, async () => {
                await api.post('/api/models/deploy', {name: m.name, version: v.version});
                say(`Version ${v.version} of ${m.name} is in production.`);
                refresh();
            });
        });
        return b;
    };
    const previous = m.aliases ? m.aliases.previous : undefined;
    let rollback = null;
    if (previous !== undefined && previous !== null) {
        rollback = h('button', {type: 'button'}, `Roll back to version ${previous}`);
        rollback.addEventListener('click', async () => {
            if (!(await confirmAction(`Roll ${m.name} back to version ${previous}?`, 'Roll back'))) return;
            act(rollback, async () => {
                const answer = await api.post('/api/models/rollback', {name: m.name});
                say(`${m.name} rolled back${answer && answer.production ? ` to version ${answer.production}` : ''}.`);
                refresh();
            });
        });
    }
    const versions = [...(m.versions || [])].sort((a, b) => b.version - a.version);
    return h('section', {class: 'model', 'aria-labelledby': `model-${m.name}`},
        h('h3', {id: `model-${m.name}`}, m.name),
        h('p', {class: 'production'}, m.production === null || m.production === undefined
            ? 'No version in production.' : `In production: version ${m.production}`, rollback ? ' ' : null, rollback),
        h('div', {class: 'table-wrap'}, h('table', {class: 'versions'},
            h('caption', {class: 'sr-only'}, `Versions of ${m.name}`),
            h('thead', {}, h('tr', {}, ['Version', 'Run', 'Created', 'Aliases', 'Metrics', ''].map((t) =>
                h('th', {scope: 'col'}, t)))),
            h('tbody', {}, versions.map((v) => h('tr', {class: v.version === m.production ? 'current' : ''},
                h('td', {class: 'num'}, String(v.version)),
                h('td', {class: 'path'}, v.run_id || '—'),
                h('td', {}, time(v.created_at)),
                h('td', {}, (v.aliases || []).map((a) => h('span', {class: `badge ${a === 'production' ? 'finished' : ''}`}, a))),
                pairsCell(v.metrics),
                h('td', {}, v.version === m.production ? null : deployButton(v))))))));
}

export async function modelsView(el, {isCurrent}) {
    const [runs, models] = await Promise.all([api.get('/api/runs'), api.get('/api/models')]);
    if (!isCurrent()) return;
    append(el, [
        h('h1', {tabindex: -1}, 'Models & runs'),
        h('h2', {}, 'Registered models'),
        models.models.length ? models.models.map(modelSection)
            : h('p', {class: 'empty'}, 'No registered models: faceq register-model makes one from a training run.'),
        h('h2', {}, 'Runs'),
        runs.runs.length ? runsTable(runs.runs) : h('p', {class: 'empty'}, 'No training runs yet.')]);
}
