// people.js — the People page (known persons, filtered and paged) and the
// Strangers page (unknown persons, most seen first, to name, merge or
// delete), and the rename / merge / delete forms the person page shares.
import * as api from './api.js';
import {h, clear, when, num, label, face} from './dom.js';
import {say, act, confirmAction, pager, go} from './ui.js';

const PEOPLE_PER_PAGE = 48;
const STRANGERS_PER_PAGE = 12;
const FACES_PER_STRANGER = 6;

function pageOf(params) {
    const page = parseInt(params.get('page') || '1', 10);
    return Number.isFinite(page) && page > 0 ? page - 1 : 0;
}

function photos(p) {
    return `${p.samples} enrolled · ${p.detections} seen`;
}

function personCard(p) {
    return h('li', {},
        h('a', {class: 'card person', href: `#/person/${api.seg(p.id)}`},
            face(p.thumbnail, `Face of ${label(p)}`),
            h('span', {class: 'name'}, label(p)),
            h('span', {class: 'meta'}, photos(p)),
            h('span', {class: 'meta'}, `last seen ${when(p.last_seen)}`)));
}

export async function peopleView(el, {params, isCurrent}) {
    const text = params.get('q') || '';
    const page = pageOf(params);
    const results = h('div', {class: 'results', 'aria-live': 'polite'});
    const input = h('input', {id: 'filter', type: 'search', name: 'q', value: text, autocomplete: 'off',
        placeholder: 'name or id'});

    // Filtering reloads the list in place (the input keeps focus) and keeps
    // the hash in step without a navigation, so a reload or a link shows the same.
    const load = async (q, offset) => {
        const data = await api.get('/api/persons' + api.query({kind: 'known', q, order: 'name', offset,
            limit: PEOPLE_PER_PAGE}));
        const params = q ? {q} : {};
        clear(results).append(
            data.persons.length === 0
                ? h('p', {class: 'empty'}, q ? `Nobody's name or id contains “${q}”.` : 'Nobody is known yet: enroll photos with faceq enroll or register a face on the Analyze page.')
                : h('ul', {class: 'cards'}, data.persons.map(personCard)),
            pager('people', params, offset, PEOPLE_PER_PAGE, data.total, data.persons.length));
    };
    let timer = null;
    input.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
            const q = input.value.trim();
            history.replaceState(null, '', '#/people' + (q ? '?q=' + encodeURIComponent(q) : ''));
            load(q, 0).catch((err) => say(err.message, true));
        }, 250);
    });

    await load(text, page * PEOPLE_PER_PAGE);
    if (!isCurrent()) return;
    el.append(
        h('h1', {tabindex: -1}, 'People'),
        h('form', {class: 'filter', role: 'search', onsubmit: (e) => e.preventDefault()},
            h('label', {for: 'filter'}, 'Filter by name or id'), input),
        results);
}

// --------------------------------------------------------------- actions

// Rename, merge and delete forms for person `p`; `done(kind, answer)` runs
// after a change succeeded.
export function actionForms(p, done) {
    const id = p.id;
    const nameInput = h('input', {id: `name-${id}`, name: 'name', required: true, maxlength: 128, autocomplete: 'off',
        value: p.name || ''});
    const rename = h('form', {class: 'inline rename'},
        h('label', {for: `name-${id}`}, p.kind === 'unknown' ? 'Name this stranger' : 'Rename'), nameInput,
        h('button', {type: 'submit'}, p.kind === 'unknown' ? 'Name' : 'Rename'));
    rename.addEventListener('submit', (e) => {
        e.preventDefault();
        act(rename.querySelector('button'), async () => {
            const answer = await api.post(`/api/persons/${api.seg(id)}/rename`, {name: nameInput.value.trim()});
            say(`${label(p)} is now ${answer.name}.`);
            done('rename', answer);
        });
    });

    const intoInput = h('input', {id: `into-${id}`, name: 'into', required: true, autocomplete: 'off',
        placeholder: 'name or person_… id'});
    const merge = h('form', {class: 'inline merge'},
        h('label', {for: `into-${id}`}, 'Merge into'), intoInput, h('button', {type: 'submit'}, 'Merge'));
    merge.addEventListener('submit', (e) => {
        e.preventDefault();
        mergeInto(p, intoInput.value.trim(), merge.querySelector('button'), done);
    });

    const del = h('button', {type: 'button', class: 'danger'}, 'Delete');
    del.addEventListener('click', async () => {
        const sure = await confirmAction(
            `Delete ${label(p)}? Its samples go; its detections stay in the gallery, unattributed.`, 'Delete');
        if (!sure) return;
        act(del, async () => {
            await api.post(`/api/persons/${api.seg(id)}/delete`);
            say(`Deleted ${label(p)}.`);
            done('delete', null);
        });
    });
    return h('div', {class: 'actions-block'}, rename, merge, h('div', {class: 'actions'}, del));
}

async function mergeInto(p, into, button, done) {
    if (!into) return;
    const sure = await confirmAction(`Merge ${label(p)} into ${into}? Its faces move there and ${label(p)} is removed.`,
        'Merge');
    if (!sure) return;
    await act(button, async () => {
        const answer = await api.post(`/api/persons/${api.seg(p.id)}/merge`, {into});
        say(`Merged ${label(p)} into ${label(answer)}.`);
        done('merge', answer);
    });
}

// --------------------------------------------------------------- strangers

function suggestionLine(p, done) {
    const sug = p.suggestion;
    if (!sug) return null;
    const button = h('button', {type: 'button'}, `Merge into ${sug.name || sug.id}`);
    button.addEventListener('click', () => mergeInto(p, sug.id, button, done));
    return h('p', {class: 'suggestion'},
        'Looks like ', h('a', {href: `#/person/${api.seg(sug.id)}`}, sug.name || sug.id),
        ` (distance ${num(sug.distance, 3)}, margin ${num(sug.margin, 3)}) `, button);
}

async function strangerCard(p, refresh) {
    let faces = [];
    try {
        faces = (await api.get(`/api/persons/${api.seg(p.id)}/faces` + api.query({limit: FACES_PER_STRANGER}))).faces;
    } catch (err) {
        if (err.status === 401) throw err;
    }
    const strip = faces.filter((f) => !f.rejected).map((f) =>
        face(f.thumbnail, `Face of ${p.id} in ${f.image}`, 'small'));
    return h('li', {},
        h('article', {class: 'card stranger', 'aria-labelledby': `h-${p.id}`},
            h('h2', {id: `h-${p.id}`}, h('a', {href: `#/person/${api.seg(p.id)}`}, p.id)),
            h('p', {class: 'meta'}, `seen ${p.detections} time${p.detections === 1 ? '' : 's'}, last ${when(p.last_seen)}`),
            h('div', {class: 'strip'}, strip.length ? strip : face(p.thumbnail, `Face of ${p.id}`)),
            suggestionLine(p, refresh),
            actionForms(p, refresh)));
}

export async function strangersView(el, {params, isCurrent}) {
    const page = pageOf(params);
    const offset = page * STRANGERS_PER_PAGE;
    const data = await api.get('/api/persons' + api.query({kind: 'unknown', order: 'detections', offset,
        limit: STRANGERS_PER_PAGE}));
    const refresh = () => go(location.hash);
    const cards = await Promise.all(data.persons.map((p) => strangerCard(p, refresh)));
    if (!isCurrent()) return;
    el.append(
        h('h1', {tabindex: -1}, 'Strangers'),
        h('p', {class: 'lead'}, 'Faces seen but not known, most seen first. Name one and it becomes a known person.'),
        cards.length ? h('ul', {class: 'cards wide'}, cards) : h('p', {class: 'empty'}, 'No strangers.'),
        pager('strangers', {}, offset, STRANGERS_PER_PAGE, data.total, data.persons.length));
}
