// ui.js — what every view shares: the status line, actions on buttons, the
// confirmation dialog, paging links and navigation after a change.
import {h} from './dom.js';

const statusLine = document.getElementById('status');

// A message for the user: polite for news, an alert for failures.
export function say(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle('error', isError);
    statusLine.setAttribute('role', isError ? 'alert' : 'status');
}

// Runs an action of a button: disables it meanwhile, reports failure.
export async function act(button, fn) {
    if (button) button.disabled = true;
    try {
        return await fn();
    } catch (err) {
        say(err.message || String(err), true);
        return undefined;
    } finally {
        if (button && button.isConnected) button.disabled = false;
    }
}

// Asks before a change that cannot be taken back; resolves true for OK.
export function confirmAction(text, okLabel = 'OK') {
    const dialog = document.getElementById('confirm');
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
        dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
        dialog.returnValue = 'cancel';
        dialog.showModal();
    });
}

// "1–48 of 10,000" with previous/next links that keep the other parameters.
export function pager(path, params, offset, limit, total, shown) {
    const page = Math.floor(offset / limit);
    const link = (p, text, rel) => {
        const q = new URLSearchParams(params);
        if (p > 0) q.set('page', String(p + 1));
        else q.delete('page');
        const qs = q.toString();
        return h('a', {href: `#/${path}${qs ? '?' + qs : ''}`, rel, class: 'button'}, text);
    };
    const from = total === 0 ? 0 : offset + 1;
    return h('nav', {class: 'pager', 'aria-label': 'Pages of results'},
        page > 0 ? link(page - 1, '← Previous', 'prev') : null,
        h('span', {}, `${from}–${offset + shown} of ${total.toLocaleString('en')}`),
        offset + shown < total ? link(page + 1, 'Next →', 'next') : null);
}

let refresh = () => {};
export function setRefresh(fn) {
    refresh = fn;
}

// Shows `hash`, rendering it again when it is the current one (after a change).
export function go(hash) {
    if (location.hash === hash) refresh();
    else location.hash = hash;
}

