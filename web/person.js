// person.js — one person: their faces over time, newest first (thumbnail,
// photo, date, age, gender, distance), "Not this person" on each face and
// Undo on the rejected ones, the enrolled photos, and rename / merge / delete.
import * as api from './api.js';
import {h, when, num, label, face} from './dom.js';
import {say, act, pager, go} from './ui.js';
import {actionForms} from './people.js';

const FACES_PER_PAGE = 50;

function faceRow(p, f, refresh) {
    const button = h('button', {type: 'button', class: f.rejected ? '' : 'danger'},
        f.rejected ? 'Undo' : 'Not this person');
    button.setAttribute('aria-label', `${f.rejected ? 'Undo “not this person” for' : 'Not'} ${label(p)}: face in ${f.image}`);
    button.addEventListener('click', () =>
        act(button, async () => {
            const route = f.rejected ? 'unreject' : 'reject';
            await api.post(`/api/persons/${api.seg(p.id)}/${route}`, {detection_id: f.detection_id});
            say(f.rejected ? `The face in ${f.image} is ${label(p)}'s again.`
                : `The face in ${f.image} is no longer ${label(p)}'s.`);
            refresh();
        }));
    return h('tr', {class: f.rejected ? 'rejected' : '', 'data-detection': f.detection_id},
        h('td', {}, face(f.thumbnail, `Face of ${label(p)} in ${f.image}`, 'small')),
        h('td', {class: 'path'}, f.image),
        h('td', {}, when(f.detected_at)),
        h('td', {class: 'num'}, num(f.age, 0)),
        h('td', {}, f.gender || '—'),
        h('td', {class: 'num'}, num(f.distance, 3)),
        h('td', {}, f.rejected ? 'not this person' : f.decision),
        h('td', {}, button));
}

export async function personView(el, {args, params, isCurrent}) {
    const [id] = args;
    const page = Math.max(0, (parseInt(params.get('page') || '1', 10) || 1) - 1);
    const offset = page * FACES_PER_PAGE;
    const [p, faces] = await Promise.all([
        api.get(`/api/persons/${api.seg(id)}`),
        api.get(`/api/persons/${api.seg(id)}/faces` + api.query({offset, limit: FACES_PER_PAGE})),
    ]);
    if (!isCurrent()) return;
    const refresh = () => go(location.hash);
    const after = (kind, answer) => {
        if (kind === 'delete') go(p.kind === 'unknown' ? '#/strangers' : '#/people');
        else if (kind === 'merge') go(`#/person/${api.seg(answer.id)}`);
        else refresh();
    };

    const sug = p.suggestion;
    el.append(
        h('div', {class: 'person-head'},
            face(p.thumbnail, `Face of ${label(p)}`, 'large'),
            h('div', {},
                h('h1', {tabindex: -1}, label(p)),
                h('p', {class: 'meta'}, `${p.id} · ${p.kind} · ${p.samples} enrolled · ${p.detections} seen · last seen ${when(p.last_seen)}`),
                sug ? h('p', {class: 'suggestion'}, 'Looks like ',
                    h('a', {href: `#/person/${api.seg(sug.id)}`}, sug.name || sug.id),
                    ` (distance ${num(sug.distance, 3)}, margin ${num(sug.margin, 3)})`) : null)),
        actionForms(p, after),
        h('h2', {}, 'Faces'),
        faces.faces.length === 0 ? h('p', {class: 'empty'}, 'No detections of this person yet.') :
            h('div', {class: 'table-wrap'},
                h('table', {class: 'faces'},
                    h('caption', {class: 'sr-only'}, `Faces of ${label(p)}, newest first`),
                    h('thead', {}, h('tr', {},
                        ['Face', 'Photo', 'Date', 'Age', 'Gender', 'Distance', 'Decision', ''].map((t) =>
                            h('th', {scope: 'col'}, t)))),
                    h('tbody', {}, faces.faces.map((f) => faceRow(p, f, refresh))))),
        pager(`person/${api.seg(p.id)}`, {}, offset, FACES_PER_PAGE, faces.total, faces.faces.length));

    const samples = p.samples_list || [];
    if (samples.length) {
        el.append(h('h2', {}, 'Enrolled photos'),
            h('ul', {class: 'cards'}, samples.map((sm) => h('li', {},
                h('figure', {class: 'card'},
                    face(sm.thumbnail, `Face of ${label(p)} in ${sm.source_path}`),
                    h('figcaption', {},
                        h('div', {class: 'path'}, sm.source_path),
                        h('div', {class: 'meta'}, when(sm.created_at))))))));
    }
}
