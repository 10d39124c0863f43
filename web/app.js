// app.js — the single-page app: a hash router over the views, the login
// when the server has an API key, and the pieces every view shares
// (status line, confirmation dialog, paging). Routes:
//   #/people?q=&page=   #/strangers?page=   #/person/<id>?page=
//   #/analyze           #/stats             #/models
import * as api from './api.js';
import {h, clear} from './dom.js';
import {say, act, setRefresh} from './ui.js';
import {peopleView, strangersView} from './people.js';
import {personView} from './person.js';
import {analyzeView} from './analyze.js';
import {statsView} from './stats.js';
import {modelsView} from './models.js';

const main = document.getElementById('main');
const logoutButton = document.getElementById('logout');
const nav = document.getElementById('nav');

const routes = [
    [/^people$/, peopleView, 'People'],
    [/^strangers$/, strangersView, 'Strangers'],
    [/^person\/([^/]+)$/, personView, 'Person'],
    [/^analyze$/, analyzeView, 'Analyze'],
    [/^stats$/, statsView, 'Stats'],
    [/^models$/, modelsView, 'Models & runs'],
];

let session = null;
let renderId = 0;  // a view rendered for an older hash is dropped

function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const at = raw.indexOf('?');
    const path = at < 0 ? raw : raw.slice(0, at);
    const params = new URLSearchParams(at < 0 ? '' : raw.slice(at + 1));
    return {path, params};
}

function markNav(title) {
    for (const a of document.querySelectorAll('#nav a')) {
        if (a.textContent === title) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    }
}

async function render() {
    const id = ++renderId;
    delete document.body.dataset.ready;
    if (!session || (session.auth_required && !session.logged_in)) return showLogin();
    const {path, params} = parseHash();
    const route = routes.find(([re]) => re.test(path));
    if (!route) {
        location.replace('#/people');
        return;
    }
    nav.hidden = false;
    const [re, view, title] = route;
    const args = re.exec(path).slice(1).map(decodeURIComponent);
    markNav(title === 'Person' ? '' : title);
    const viewEl = h('div', {class: 'view'});
    try {
        await view(viewEl, {args, params, isCurrent: () => id === renderId});
    } catch (err) {
        if (err instanceof api.ApiError && err.status === 401) return;  // the login form is up
        viewEl.append(h('p', {class: 'error', role: 'alert'}, `Could not load this page: ${err.message}`));
    }
    if (id !== renderId) return;
    clear(main).append(viewEl);
    document.title = `${title} — faceq`;
    const heading = main.querySelector('h1');
    if (heading && document.activeElement === document.body) heading.focus({preventScroll: true});
    // For tests and scripts: which hash the page shows now, fully rendered.
    document.body.dataset.ready = location.hash;
}

function showLogin() {
    logoutButton.hidden = true;
    nav.hidden = true;  // nothing to go to before logging in
    markNav('');
    const input = h('input', {id: 'key', name: 'key', type: 'password', autocomplete: 'current-password', required: true});
    const form = h('form', {class: 'login card'},
        h('h1', {tabindex: -1}, 'Log in'),
        h('p', {}, 'This server needs its API key. The page keeps a session cookie for 12 hours.'),
        h('label', {for: 'key'}, 'API key'), input,
        h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Log in')));
    form.addEventListener('submit', async (event) => {
        event.preventDefault();
        await act(form.querySelector('button'), async () => {
            try {
                const answer = await api.post('/api/login', {key: input.value});
                input.value = '';
                api.setCsrf(answer.csrf_token);
                session = {...session, logged_in: true, csrf_token: answer.csrf_token};
                say('Logged in.');
                logoutButton.hidden = false;
                render();
            } catch (err) {
                throw err.status === 401 ? new Error('Wrong API key.') : err;
            }
        });
    });
    clear(main).append(form);
    document.title = 'Log in — faceq';
    input.focus();
    document.body.dataset.ready = 'login';
}

async function start() {
    try {
        session = await api.get('/api/session');
    } catch (err) {
        clear(main).append(h('p', {class: 'error', role: 'alert'}, `The server did not answer: ${err.message}`));
        return;
    }
    api.setCsrf(session.csrf_token);
    logoutButton.hidden = !session.auth_required || !session.logged_in;
    api.setUnauthorizedHandler(() => {
        if (!session.auth_required || !session.logged_in) return;  // a wrong key at login: the form says so
        session = {...session, logged_in: false, csrf_token: null};
        api.setCsrf(null);
        say('Your session has ended: log in again.', true);
        showLogin();
    });
    logoutButton.addEventListener('click', () =>
        act(logoutButton, async () => {
            await api.post('/api/logout');
            session = {...session, logged_in: false, csrf_token: null};
            api.setCsrf(null);
            say('Logged out.');
            showLogin();
        }));
    window.addEventListener('hashchange', () => {
        say('');
        render();
    });
    setRefresh(render);
    if (!location.hash) location.replace('#/people');
    render();
}

start();
