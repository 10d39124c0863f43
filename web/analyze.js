// analyze.js — the Analyze page: a photo dropped or picked is sent to
// POST /analyze (the server's own analysis, stored as `analyze --store`
// would) and drawn back with the answer's boxes, names or stranger ids, age
// and gender; each face can be registered under a name (POST /register).
import * as api from './api.js';
import {h, s, clear, num} from './dom.js';
import {say, act} from './ui.js';

// What a face is called on the photo: its name, its stranger id, or why not.
function who(f) {
    if (f.decision === 'known') return f.identity;
    if (f.decision === 'unknown') return f.person_id || 'stranger';
    return 'ambiguous';
}

function details(f) {
    const parts = [];
    if (f.age !== null && f.age !== undefined) parts.push(`age ${num(f.age, 0)}`);
    if (f.gender) parts.push(f.gender);
    return parts.join(', ');
}

// The photo with its faces: an SVG in the photo's own pixel coordinates, so
// the answer's boxes are drawn as they are and the whole scales with the page.
// Each box is numbered (with the name of a known face); the full answer for
// the number is in the list below and in the box's tooltip (<title>), as a
// group photo's stranger ids would cover the faces.
function overlay(url, answer, fileName) {
    const {width, height} = answer;
    const font = Math.max(10, Math.round(width / 40));
    const svg = s('svg', {class: 'photo', viewBox: `0 0 ${width} ${height}`, role: 'img',
        'aria-label': `${fileName}: ${answer.faces.length} face${answer.faces.length === 1 ? '' : 's'} marked`});
    svg.append(s('image', {href: url, x: 0, y: 0, width, height}));
    answer.faces.forEach((f, i) => {
        const b = f.bbox;
        const text = `${i + 1}${f.decision === 'known' ? ' ' + f.identity : ''}`;
        const full = `${i + 1}. ${who(f)} (${f.decision})${details(f) ? ', ' + details(f) : ''}`;
        const above = b.y > font * 1.2;
        svg.append(s('g', {class: `face ${f.decision}`},
            s('title', {}, full),
            s('rect', {class: 'face-box', x: b.x, y: b.y, width: b.width, height: b.height,
                'vector-effect': 'non-scaling-stroke'}),
            s('text', {x: b.x + 2, y: above ? b.y - font * 0.3 : b.y + b.height + font, 'font-size': font}, text)));
    });
    return svg;
}

// The image sent to /register for face `f`: the photo itself when it shows
// one face, else a crop around that face (with room for the detector), so
// the server's own detection picks exactly this face.
async function photoFor(file, answer, f) {
    if (answer.faces.length === 1) return file;
    const bitmap = await createImageBitmap(file);
    const b = f.bbox;
    const pad = Math.max(b.width, b.height) * 0.6;
    const x = Math.max(0, Math.floor(b.x - pad));
    const y = Math.max(0, Math.floor(b.y - pad));
    const w = Math.min(bitmap.width, Math.ceil(b.x + b.width + pad)) - x;
    const hgt = Math.min(bitmap.height, Math.ceil(b.y + b.height + pad)) - y;
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = hgt;
    canvas.getContext('2d').drawImage(bitmap, x, y, w, hgt, 0, 0, w, hgt);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.95));
    return new File([blob], `face-${Math.round(b.x)}-${Math.round(b.y)}-of-${file.name}`, {type: 'image/jpeg'});
}

function faceItem(file, answer, f, i) {
    const id = `register-${i}`;
    const input = h('input', {id, name: 'person_name', required: true, maxlength: 128, autocomplete: 'off',
        value: f.decision === 'known' ? f.identity : ''});
    const form = h('form', {class: 'inline register'},
        h('label', {for: id}, 'Register this face as'), input, h('button', {type: 'submit'}, 'Register'));
    form.addEventListener('submit', (e) => {
        e.preventDefault();
        act(form.querySelector('button'), async () => {
            const body = new FormData();
            body.append('file', await photoFor(file, answer, f));
            body.append('person_name', input.value.trim());
            if (answer.faces.length > 1) body.append('pick', 'largest');
            const r = await api.post('/register', body);
            say(r.added ? `Registered this face as ${r.person_name}.` : `This photo was already a face of ${r.person_name}.`);
        });
    });
    const whoEl = f.person_id ? h('a', {href: `#/person/${api.seg(f.person_id)}`}, who(f)) : who(f);
    return h('li', {class: `face-item ${f.decision}`},
        h('p', {}, h('strong', {class: 'number'}, `${i + 1}.`), ' ', whoEl,
            ` — ${f.decision}`, f.distance !== null && f.distance !== undefined ? `, distance ${num(f.distance, 3)}` : '',
            details(f) ? `, ${details(f)}` : ''),
        form);
}

export async function analyzeView(el) {
    const result = h('div', {class: 'analysis', 'aria-live': 'polite'});
    const input = h('input', {id: 'photo', type: 'file', accept: 'image/*', class: 'sr-only'});
    const zone = h('label', {for: 'photo', class: 'dropzone'},
        h('span', {}, 'Drop a photo here, or '), h('span', {class: 'button'}, 'choose a file'));
    let objectUrl = null;

    const analyze = async (file) => {
        if (!file) return;
        clear(result).append(h('p', {class: 'busy'}, `Analysing ${file.name}…`));
        try {
            const body = new FormData();
            body.append('file', file);
            const answer = await api.post('/analyze', body);
            if (objectUrl) URL.revokeObjectURL(objectUrl);
            objectUrl = URL.createObjectURL(file);
            clear(result).append(
                h('h2', {}, `${file.name}: ${answer.message}`),
                overlay(objectUrl, answer, file.name),
                answer.faces.length ? h('ul', {class: 'faces-list'}, answer.faces.map((f, i) => faceItem(file, answer, f, i))) : null,
                h('p', {class: 'meta'}, `${answer.width}×${answer.height} px, ${num(answer.elapsed_ms, 0)} ms` +
                    (answer.stored ? ', recorded in the gallery' : '')));
        } catch (err) {
            clear(result).append(h('p', {class: 'error', role: 'alert'}, `Could not analyse ${file.name}: ${err.message}`));
        }
    };
    input.addEventListener('change', () => analyze(input.files[0]));
    zone.addEventListener('dragover', (e) => {
        e.preventDefault();
        zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
        e.preventDefault();
        zone.classList.remove('over');
        analyze(e.dataTransfer.files[0]);
    });
    el.append(h('h1', {tabindex: -1}, 'Analyze a photo'),
        h('p', {class: 'lead'}, 'The photo is analysed by the server and recorded in the gallery, as faceq analyze --store does.'),
        input, zone, result);
}
