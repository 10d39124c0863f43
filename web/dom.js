// dom.js — building the page from data without ever parsing it as HTML.
// Every name, path and id shown comes from the gallery or the user, so text
// only ever enters the page as text nodes: h() never touches innerHTML, and
// attribute values go through setAttribute (which does not parse markup).
// The Content-Security-Policy forbids inline styles: look is set by classes.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(el, props, children) {
    for (const [key, value] of Object.entries(props || {})) {
        if (value === null || value === undefined || value === false) continue;
        if (key.startsWith('on') && typeof value === 'function') {
            el.addEventListener(key.slice(2), value);
        } else if (key === 'value' || key === 'checked') {
            el[key] = value;  // the live property, not only the default
        } else {
            el.setAttribute(key === 'className' ? 'class' : key, value === true ? '' : String(value));
        }
    }
    append(el, children);
    return el;
}

// Appends children: nodes, strings and numbers (as text), arrays of them;
// null, undefined and false are skipped.
export function append(el, children) {
    for (const child of children.flat(Infinity)) {
        if (child === null || child === undefined || child === false) continue;
        el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
}

// h('a', {href: '#/people', class: 'x', onclick: fn}, 'text', otherNode)
export function h(tag, props, ...children) {
    return fill(document.createElement(tag), props, children);
}

// The same for SVG elements (charts, face boxes).
export function s(tag, props, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), props, children);
}

export function clear(el) {
    el.replaceChildren();
    return el;
}

// "2026-11-28 10:34 UTC" for unix seconds; "—" for none.
export function when(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

export function date(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    return new Date(seconds * 1000).toISOString().slice(0, 10);
}

// A number with at most `digits` decimals, "—" for none.
export function num(value, digits = 2) {
    if (value === null || value === undefined) return '—';
    if (typeof value !== 'number') return String(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

export function bytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
        n /= 1000;
        i++;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

// A person's label: the name, else the public id (strangers).
export function label(person) {
    return person.name || person.id;
}

// The face picture of a person, or a placeholder when none is stored (so
// the page never asks for a thumbnail the server would answer 404).
// A face the server has no picture of (recorded before thumbnails were
// stored, until `faceq gallery thumbnails` makes it) shows the placeholder too.
export function face(url, alt, extraClass = '') {
    const none = () => h('span', {class: `thumb none ${extraClass}`, role: 'img', 'aria-label': alt}, '?');
    if (!url) return none();
    const img = h('img', {class: `thumb ${extraClass}`, src: url, alt, width: 112, height: 112});
    img.addEventListener('error', () => img.replaceWith(none()), {once: true});
    return img;
}
