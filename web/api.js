// api.js — the page's one way to talk to `faceq serve` (docs/api.md): JSON
// in and out, the session cookie sent by the browser, and the CSRF token of
// the session on every POST (the server refuses a POST without it: 403 csrf).

let csrfToken = null;
let onUnauthorized = () => {};

export function setCsrf(token) {
    csrfToken = token;
}

// Called when the server says the session is gone (401): the app shows the login form.
export function setUnauthorizedHandler(fn) {
    onUnauthorized = fn;
}

export class ApiError extends Error {
    constructor(status, kind, message) {
        super(message);
        this.status = status;
        this.kind = kind;
    }
}

async function answer(response) {
    // An empty answer is read too: Chrome reports a response whose body was
    // never read as an aborted request.
    if (response.status === 204) {
        await response.text();
        return null;
    }
    let body = null;
    try {
        body = await response.json();
    } catch {
        body = null;
    }
    if (!response.ok || (body && body.success === false)) {
        const err = body && body.error ? body.error : {};
        if (response.status === 401) onUnauthorized();
        throw new ApiError(response.status, err.kind || 'http', err.message || `${response.status} ${response.statusText}`);
    }
    return body;
}

export async function get(path) {
    return answer(await fetch(path, {headers: {Accept: 'application/json'}, credentials: 'same-origin'}));
}

// body: a plain object (sent as JSON), FormData (multipart), or nothing.
export async function post(path, body) {
    const headers = {Accept: 'application/json'};
    if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
    let payload;
    if (body instanceof FormData) {
        payload = body;  // the browser writes the multipart boundary
    } else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
    }
    return answer(await fetch(path, {method: 'POST', headers, body: payload, credentials: 'same-origin'}));
}

// A path segment: public ids are plain, but nothing from data goes into a URL unescaped.
export function seg(value) {
    return encodeURIComponent(String(value));
}

export function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const text = q.toString();
    return text ? '?' + text : '';
}
