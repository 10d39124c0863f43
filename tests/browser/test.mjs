// tests/browser/test.mjs — faceq's web page in a real browser: Debian's
// chromium, headless, driven by puppeteer-core, against `faceq serve` on a
// gallery built with the faceq command from real photos (../shared/data).
// What the page changes is checked with the CLI (`faceq search`,
// `faceq persons`, `faceq analyze`, `faceq models list`), never with the
// page's own view of it. Screenshots of every page, desktop and phone size,
// go to $FACEQ_BROWSER_OUT (default tests/browser/out/); with
// FACEQ_SCREENSHOT_BLUR=1 their photos are blurred (the docs/screenshots/ set).
//
//   node --test test.mjs     (tools/test.sh's `browser` part runs it)
//
// Environment: FACEQ_BIN (default build/faceq), FACEQ_MIRROR (default
// ../shared/mirror), FACEQ_DATA (default ../shared/data), CHROMIUM
// (default /usr/bin/chromium), FACEQ_REQUIRE_DATA (0: skip when the data or
// the mirror is missing; otherwise that fails).
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, execFile} from 'node:child_process';
import {promisify} from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const FACEQ = process.env.FACEQ_BIN || path.join(root, 'build/faceq');
const DATA = process.env.FACEQ_DATA || path.join(root, '../shared/data');
const MIRROR = process.env.FACEQ_MIRROR || path.join(root, '../shared/mirror');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = process.env.FACEQ_BROWSER_OUT || path.join(here, 'out');
const LFW = path.join(DATA, 'lfw-dev/lfw-deepfunneled');
const GROUP_PHOTO = path.join(DATA, 'dlib_faces/2008_002079.jpg');  // 6 faces

const DESKTOP = {width: 1280, height: 860};
const PHONE = {width: 390, height: 844, deviceScaleFactor: 1, isMobile: true, hasTouch: true};

const missing = [DATA, MIRROR, FACEQ, CHROMIUM].filter((p) => !fs.existsSync(p));
const skip = missing.length > 0 && process.env.FACEQ_REQUIRE_DATA === '0'
    ? `missing ${missing.join(', ')} (FACEQ_REQUIRE_DATA=0)` : false;

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'faceq-browser-'));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'faceq-chromium-'));
const run = promisify(execFile);

// ---------------------------------------------------------------- the CLI

async function faceq(...args) {
    try {
        const {stdout, stderr} = await run(FACEQ, ['--home', home, ...args],
            {maxBuffer: 64 << 20, env: {...process.env, FACEQ_MIRROR: MIRROR}});
        return {code: 0, out: stdout, err: stderr};
    } catch (e) {
        if (typeof e.code !== 'number') throw e;
        return {code: e.code, out: e.stdout, err: e.stderr};
    }
}

// Runs faceq and returns its stdout's JSON records; fails on a non-zero exit.
async function records(...args) {
    const r = await faceq(...args);
    assert.equal(r.code, 0, `faceq ${args.join(' ')} failed: ${r.err}`);
    return r.out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

const photos = (person, n, from = 0) =>
    fs.readdirSync(path.join(LFW, person)).sort().slice(from, from + n).map((f) => path.join(LFW, person, f));

// The face of an analysis that the photo is about: the largest.
function mainFace(record) {
    return [...record.faces].sort((a, b) => b.bbox.width * b.bbox.height - a.bbox.width * a.bbox.height)[0];
}

async function analyzeOne(photo) {
    const [r] = await records('analyze', photo);
    return mainFace(r);
}

async function person(idOrName) {
    const r = await faceq('persons', 'show', idOrName);
    return r.code === 0 ? JSON.parse(r.out) : null;
}

// ---------------------------------------------------------------- the server

class Server {
    constructor(extraArgs = []) {
        this.extraArgs = extraArgs;
    }

    async start() {
        this.proc = spawn(FACEQ, ['--home', home, 'serve', '--port', '0', '-j', '1', '--threads', '4', ...this.extraArgs],
            {stdio: ['ignore', 'ignore', 'pipe']});
        this.log = '';
        const port = await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`faceq serve did not listen: ${this.log}`)), 20000);
            this.proc.stderr.on('data', (chunk) => {
                this.log += chunk;
                const m = /listening on http:\/\/[^:]+:(\d+)/.exec(this.log);
                if (m) {
                    clearTimeout(timer);
                    resolve(Number(m[1]));
                }
            });
            this.proc.on('exit', (code) => reject(new Error(`faceq serve exited ${code}: ${this.log}`)));
        });
        this.base = `http://127.0.0.1:${port}`;
        for (let i = 0; i < 200; i++) {
            const r = await fetch(`${this.base}/health`).catch(() => null);
            if (r && r.status === 200) return this;
            await new Promise((res) => setTimeout(res, 100));
        }
        throw new Error(`faceq serve did not get ready: ${this.log}`);
    }

    async stop() {
        if (!this.proc || this.proc.exitCode !== null) return;
        const exited = new Promise((res) => this.proc.on('exit', res));
        this.proc.kill('SIGTERM');
        await exited;
    }
}

// ---------------------------------------------------------------- the browser

let browser;
let server;
const problems = [];  // console errors, page errors, failed requests, HTTP errors
const gallery = {};   // ids and photos of the gallery built in before()

async function openPage(context, viewport = DESKTOP) {
    const page = await context.newPage();
    await page.setViewport(viewport);
    page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning')
            problems.push(`console ${msg.type()}: ${msg.text()} (${msg.location()?.url ?? ''})`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
    page.on('response', (res) => {
        if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
    });
    page.on('dialog', (d) => problems.push(`unexpected browser dialog: ${d.message()}`));
    return page;
}

// Shows `hash` and waits until the app says it is rendered.
async function show(page, hash) {
    await page.bringToFront();  // a page in the background may not render
    if (!page.url().startsWith(server.base)) await page.goto(`${server.base}/${hash}`);
    else await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForFunction((h) => document.body.dataset.ready === h, {timeout: 15000}, hash);
    const error = await page.$eval('main', (m) => m.querySelector('.error')?.textContent ?? null);
    assert.equal(error, null, `${hash} shows an error`);
}

// Every <img> on the page has loaded a real picture.
async function imagesLoaded(page) {
    if (!thumbnails) return [];
    await page.waitForFunction(() => [...document.images].every((i) => i.complete), {timeout: 10000});
    const imgs = await page.$$eval('img', (imgs) => imgs.map((i) => ({alt: i.alt, width: i.naturalWidth, src: i.src})));
    for (const img of imgs) assert.match(img.alt, /^Face of ./, `alt text of ${img.src}`);
    return imgs;
}

// With FACEQ_SCREENSHOT_BLUR=1 every photo and face is blurred in the
// screenshots (through the CSSOM, which the page's CSP allows): the set
// committed to docs/screenshots/ is made so, because the test photos are
// research data whose terms forbid copying them into the repository.
const BLUR = process.env.FACEQ_SCREENSHOT_BLUR === '1';

async function shot(page, name) {
    await page.bringToFront();
    const media = 'img, canvas, svg image';
    if (BLUR) await page.$$eval(media, (els) => els.forEach((e) => { e.style.filter = 'blur(9px)'; }));
    await page.screenshot({path: path.join(OUT, `${name}.png`), fullPage: true});
    if (BLUR) await page.$$eval(media, (els) => els.forEach((e) => { e.style.filter = ''; }));
}

// The status line after an action, once it says something.
async function statusText(page) {
    await page.waitForFunction(() => document.getElementById('status').textContent !== '', {timeout: 15000});
    return page.$eval('#status', (s) => ({text: s.textContent, error: s.classList.contains('error')}));
}

async function act(page, selector) {
    await page.evaluate(() => { document.getElementById('status').textContent = ''; });
    await page.click(selector);
}

async function confirmDialog(page) {
    await page.waitForSelector('dialog#confirm[open]');
    await page.click('#confirm-ok');
}

// ---------------------------------------------------------------- set-up

before(async () => {
    if (skip) return;
    assert.deepEqual(missing, [], 'missing (set FACEQ_REQUIRE_DATA=0 to skip)');
    fs.mkdirSync(OUT, {recursive: true});
    await records('download', 'models', '--mirror', MIRROR);
    thumbnails = (await faceq('gallery', '--help')).out.includes('thumbnails');

    // Strangers first: Ricardo Lagos (2 photos) before he is enrolled, and
    // Paul Wolfowitz (3 photos), who stays a stranger until the page names him.
    gallery.lagosSeen = photos('Ricardo_Lagos', 2);
    await records('analyze', '--store', ...gallery.lagosSeen, ...photos('Paul_Wolfowitz', 3));
    gallery.enrolled = ['Hans Blix', 'Jennifer Lopez', 'Ricardo Lagos'];
    await records('enroll', '--pick', 'largest', '--name', 'Jennifer Lopez', ...photos('Jennifer_Lopez', 3));
    await records('enroll', '--pick', 'largest', '--name', 'Hans Blix', ...photos('Hans_Blix', 3));
    await records('enroll', '--pick', 'largest', '--name', 'Ricardo Lagos', ...photos('Ricardo_Lagos', 3, 2));
    gallery.lopezSeen = photos('Jennifer_Lopez', 2, 3);
    await records('analyze', '--store', ...gallery.lopezSeen, ...photos('Hans_Blix', 2, 3));

    for (const name of gallery.enrolled) gallery[name] = (await person(name)).person_id;
    const strangers = (await records('persons', 'list')).filter((p) => p.kind === 'unknown');
    const strangerOf = async (photo) => (await analyzeOne(photo)).person_id;
    gallery.wolfowitz = await strangerOf(photos('Paul_Wolfowitz', 1)[0]);
    gallery.lagosStranger = (await records('persons', 'candidates')).find((c) => c.known === gallery['Ricardo Lagos'])?.stranger;
    assert.ok(strangers.some((p) => p.person_id === gallery.wolfowitz), 'Paul Wolfowitz is a stranger');
    assert.ok(gallery.lagosStranger, 'faceq persons candidates: the Ricardo Lagos stranger looks like him');

    // Two trained versions of a model (tiny age/gender heads trained on 40 and
    // 48 UTKFace faces), version 1 deployed with the CLI.
    await records('download', 'dataset', 'utkface', '--limit', '60');
    for (const images of ['40', '48']) {
        const [run] = await records('train', 'smoke', '--images', images);
        await records('register-model', '--name', 'smoke', '--run', run.run_id);
    }
    await records('deploy', '--name', 'smoke', '--version', '1');

    server = await new Server().start();
    browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: profile,
        // As cpp.md says: no sandbox as root; nothing that reaches for the network.
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'],
    });
});

after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
    fs.rmSync(profile, {recursive: true, force: true});
    if (!process.env.FACEQ_BROWSER_KEEP) fs.rmSync(home, {recursive: true, force: true});
});

// A step of a test: it fails when the browser reported any problem meanwhile
// (a console error or warning, an exception, a failed request, an HTTP error).
async function step(t, name, fn) {
    await t.test(name, async () => {
        problems.length = 0;
        await fn();
        const seen = problems.splice(0).filter((p) => thumbnails || !/\/thumbnails?\b/.test(p));
        assert.deepEqual(seen, [], 'the browser reported problems');
    });
}

// Face thumbnails are stored by the gallery from wp-thumbs on (issue 14);
// a faceq without them (no `faceq gallery thumbnails`) answers 404 for every
// face picture, which the page shows as a placeholder: the checks that the
// pictures load are then left out, and said so. Once every branch of issue
// 14 is merged this is always true.
let thumbnails = true;

// ---------------------------------------------------------------- the pages

test('the page, desktop and phone', {skip}, async (t) => {
    if (!thumbnails) t.diagnostic('this faceq stores no face thumbnails: the checks that they load are left out');
    const context = await browser.createBrowserContext();
    const page = await openPage(context);

    await step(t, 'people: the enrolled persons with their faces', async () => {
        await show(page, '#/people');
        const names = await page.$$eval('.card.person .name', (els) => els.map((e) => e.textContent));
        assert.deepEqual(names, gallery.enrolled);
        const imgs = await imagesLoaded(page);
        assert.equal(imgs.length, thumbnails ? 3 : 0);
        for (const img of imgs) {
            assert.ok(img.width > 0, `thumbnail ${img.src} loaded`);
            assert.match(img.alt, /^Face of (Hans Blix|Jennifer Lopez|Ricardo Lagos)$/);
        }
        await shot(page, 'people');

        // The filter follows the search rules: a part of the name, any case.
        await page.type('#filter', 'LOP');
        await page.waitForFunction(() => document.querySelectorAll('.card.person').length === 1);
        assert.equal(await page.$eval('.card.person .name', (e) => e.textContent), 'Jennifer Lopez');
        assert.equal(await page.evaluate(() => location.hash), '#/people?q=LOP');

        // By keyboard: Tab reaches the card (with a visible focus ring), Enter opens the person.
        for (let i = 0; i < 20 && !(await page.evaluate(() => document.activeElement.matches('.card.person'))); i++)
            await page.keyboard.press('Tab');
        const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.equal(ring, 'solid', 'the focused card shows its focus');
        await page.keyboard.press('Enter');
        await page.waitForFunction((h) => document.body.dataset.ready === h, {}, `#/person/${gallery['Jennifer Lopez']}`);
    });

    await step(t, 'strangers: naming one makes faceq search find it', async () => {
        await show(page, '#/strangers');
        const ids = await page.$$eval('.card.stranger h2', (els) => els.map((e) => e.textContent));
        assert.ok(ids.includes(gallery.wolfowitz) && ids.includes(gallery.lagosStranger), ids.join(' '));
        assert.equal(ids[0], gallery.wolfowitz, 'most seen first');
        // The suggestion is the one `faceq persons candidates` makes.
        const suggestion = await page.$eval(`#h-${gallery.lagosStranger}`, (h) =>
            h.closest('article').querySelector('.suggestion')?.textContent);
        assert.match(suggestion, /^Looks like Ricardo Lagos \(distance 0\.\d{3}, margin/);
        for (const img of await imagesLoaded(page)) assert.ok(img.width > 0, `${img.alt} loaded`);
        await shot(page, 'strangers');

        // A name with markup in it: shown as text everywhere, never parsed.
        const name = 'Paula <i>Testname</i> & "Co"';
        assert.equal((await records('search', '--name', 'testname')).length, 0);
        await page.type(`#name-${gallery.wolfowitz}`, name);
        await act(page, `#name-${gallery.wolfowitz} ~ button`);
        const status = await statusText(page);
        assert.equal(status.error, false, status.text);
        const found = await records('search', '--name', 'TESTNAME');
        assert.equal(found.length, 1);
        assert.equal(found[0].person_id, gallery.wolfowitz);
        assert.equal(found[0].name, name);
        assert.equal(found[0].kind, 'known');

        await show(page, '#/people');
        const names = await page.$$eval('.card.person .name', (els) => els.map((e) => e.textContent));
        assert.ok(names.includes(name), names.join('|'));
        assert.equal(await page.$$eval('main i', (els) => els.length), 0, 'no element made from a name');
    });

    await step(t, 'merging a stranger into the person it looks like', async () => {
        const lagos = gallery['Ricardo Lagos'];
        const photo = gallery.lagosSeen[0];
        const faceBefore = await analyzeOne(photo);
        assert.ok(faceBefore.margin < 0, 'before: the stranger is nearer than Ricardo Lagos');
        assert.equal((await person(lagos)).detections, 0);

        await show(page, '#/strangers');
        await act(page, `#h-${gallery.lagosStranger} ~ .suggestion button`);
        await confirmDialog(page);
        const status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.equal(await person(gallery.lagosStranger), null, 'the stranger is gone');
        assert.equal((await person(lagos)).detections, gallery.lagosSeen.length);
        const faceAfter = await analyzeOne(photo);
        assert.equal(faceAfter.person_id, lagos);
        assert.ok(faceAfter.margin > 0, `after: margin ${faceAfter.margin}`);
        assert.ok(faceAfter.distance < faceBefore.distance);
    });

    await step(t, 'deleting a stranger', async () => {
        await show(page, '#/strangers');
        const id = await page.$eval('.card.stranger h2', (h) => h.textContent);
        assert.ok((await person(id)).kind === 'unknown');
        await act(page, `#h-${id} ~ .actions-block button.danger`);
        await confirmDialog(page);
        const status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.equal(await person(id), null, `${id} is gone`);
    });

    await step(t, 'a person: "not this person", and undo', async () => {
        const lopez = gallery['Jennifer Lopez'];
        const photo = gallery.lopezSeen[0];
        assert.equal((await analyzeOne(photo)).person_id, lopez);
        await show(page, `#/person/${lopez}`);
        // The photos as the gallery recorded them: compared by file name.
        const rows = await page.$$eval('table.faces tbody tr', (trs) =>
            trs.map((tr) => tr.querySelector('.path').textContent.split('/').pop()));
        assert.deepEqual([...rows].sort(), gallery.lopezSeen.map((p) => path.basename(p)).sort());
        for (const img of await imagesLoaded(page)) assert.ok(img.width > 0, `${img.alt} loaded`);
        await shot(page, 'person');

        const row = `table.faces tbody tr:nth-child(${rows.indexOf(path.basename(photo)) + 1})`;
        const detection = Number(await page.$eval(row, (tr) => tr.dataset.detection));
        const faceRecord = async () => (await records('persons', 'faces', lopez)).find((r) => r.detection_id === detection);
        assert.equal((await faceRecord()).rejected, false);
        await act(page, `${row} button`);
        let status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.equal((await faceRecord()).rejected, true);
        assert.equal((await person(lopez)).detections, gallery.lopezSeen.length - 1);
        assert.notEqual((await analyzeOne(photo)).person_id, lopez, 'the rejected face is not matched to her again');
        await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains('rejected'), {}, row);
        await shot(page, 'person-rejected');

        await act(page, `${row} button`);  // Undo
        status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.equal((await faceRecord()).rejected, false);
        assert.equal((await person(lopez)).detections, gallery.lopezSeen.length);
        assert.equal((await analyzeOne(photo)).person_id, lopez);
    });

    await step(t, 'analyze: an uploaded photo shows one box per face', async () => {
        const expected = (await records('analyze', GROUP_PHOTO))[0].faces.length;
        assert.ok(expected >= 2, `${GROUP_PHOTO} has ${expected} faces`);
        await show(page, '#/analyze');
        const input = await page.$('#photo');
        await input.uploadFile(GROUP_PHOTO);
        await page.waitForSelector('svg.photo', {timeout: 30000});
        assert.equal(await page.$$eval('svg.photo rect.face-box', (r) => r.length), expected);
        assert.equal(await page.$$eval('.faces-list > li', (li) => li.length), expected);
        await shot(page, 'analyze');

        // Register the first face under a name: the server enrolls that face.
        await page.type('#register-0', 'Group Face One');
        await act(page, '#register-0 ~ button');
        const status = await statusText(page);
        assert.equal(status.error, false, status.text);
        const found = await records('search', '--name', 'group face one');
        assert.equal(found.length, 1);
        assert.equal(found[0].samples, 1);
        // ...that face, not another: the photo analysed again names it there.
        const box = await page.$eval('svg.photo rect.face-box', (r) =>
            ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a))));
        const again = (await records('analyze', GROUP_PHOTO))[0].faces;
        const there = again.find((f) => [f.bbox.x, f.bbox.y, f.bbox.width, f.bbox.height].join() === box.join());
        assert.equal(there?.identity, 'Group Face One', JSON.stringify(again.map((f) => [f.bbox, f.identity])));

    });

    await step(t, 'stats: the numbers faceq stats gives', async () => {
        const [stats] = await records('stats', '--format', 'json');
        await show(page, '#/stats');
        const figures = await page.$$eval('.figure', (fs) => fs.map((f) => f.textContent));
        assert.ok(figures.includes(`${stats.persons.known}known persons`), figures.join('|'));
        assert.ok(figures.includes(`${stats.detections.total}detections`), figures.join('|'));
        assert.equal(await page.$$eval('svg.chart rect.bar', (r) => r.length), stats.detections_per_day.length);
        await shot(page, 'stats');
    });

    await step(t, 'models: the deployed version, deploy and roll back', async () => {
        const production = async () => (await records('models', 'list', '--format', 'json'))
            .filter((v) => v.name === 'smoke' && v.aliases.includes('production')).map((v) => v.version);
        const shown = (v) => page.waitForFunction((text) =>
            document.querySelector('#model-smoke ~ .production')?.firstChild.textContent === text, {}, `In production: version ${v}`);
        assert.deepEqual(await production(), [1]);
        await show(page, '#/models');
        await shown(1);
        assert.equal(await page.$$eval('table.runs tbody tr', (r) => r.length), 2);
        await shot(page, 'models');

        // Sorting by a column, then the same column reversed.
        await page.click('table.runs th:nth-child(2) button');
        assert.equal(await page.$eval('table.runs th:nth-child(2)', (th) => th.getAttribute('aria-sort')), 'ascending');
        await page.click('table.runs th:nth-child(2) button');
        assert.equal(await page.$eval('table.runs th:nth-child(2)', (th) => th.getAttribute('aria-sort')), 'descending');

        await act(page, 'button[aria-label="Deploy version 2 of smoke"]');
        await confirmDialog(page);
        let status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.deepEqual(await production(), [2]);
        await shown(2);

        await act(page, '#model-smoke ~ .production button');  // Roll back to version 1
        await confirmDialog(page);
        status = await statusText(page);
        assert.equal(status.error, false, status.text);
        assert.deepEqual(await production(), [1]);
        await shown(1);
    });

    // Every page again on a phone-sized screen: nothing wider than the screen.
    await step(t, 'on a phone', async () => {
        const phone = await openPage(context, PHONE);
        const pages = [['people', '#/people'], ['strangers', '#/strangers'],
            ['person', `#/person/${gallery['Jennifer Lopez']}`], ['analyze', '#/analyze'], ['stats', '#/stats'],
            ['models', '#/models']];
        for (const [name, hash] of pages) {
            await show(phone, hash);
            if (name === 'analyze') {
                await (await phone.$('#photo')).uploadFile(GROUP_PHOTO);
                await phone.waitForSelector('svg.photo', {timeout: 30000});
            }
            await imagesLoaded(phone);
            const width = await phone.evaluate(() => document.documentElement.scrollWidth);
            assert.ok(width <= PHONE.width, `${hash} is ${width} px wide on a ${PHONE.width} px screen`);
            await shot(phone, `${name}-phone`);
        }
        await phone.close();
    });

    await context.close();
});

test('with an API key, nothing loads without logging in', {skip}, async (t) => {
    const key = 'browser-test-key-' + Math.random().toString(36).slice(2);
    const keyFile = path.join(home, 'api-key');
    fs.writeFileSync(keyFile, key + '\n', {mode: 0o600});
    await server.stop();
    server = await new Server(['--api-key-file', keyFile]).start();
    const context = await browser.createBrowserContext();
    const page = await openPage(context);
    const requests = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));

    await step(t, 'the login form, and no data before it', async () => {
        await page.goto(`${server.base}/#/people`);
        await page.waitForFunction(() => document.body.dataset.ready === 'login');
        const data = requests.filter((p) => p !== '/' && !p.startsWith('/ui/') && p !== '/api/session');
        assert.deepEqual(data, []);
        assert.equal(await page.$$eval('.card.person', (c) => c.length), 0);
        // A script without the key or a cookie gets nothing either.
        assert.equal((await fetch(`${server.base}/api/persons`)).status, 401);
        assert.equal((await fetch(`${server.base}/api/persons/${gallery['Hans Blix']}/thumbnail`)).status, 401);
        await shot(page, 'login');

        await page.type('#key', 'not-the-key');
        await act(page, 'form.login button');
        const status = await statusText(page);
        assert.deepEqual(status, {text: 'Wrong API key.', error: true});
        // The browser logs the refused login: expected here, and only that.
        assert.deepEqual(problems.splice(0).filter((p) => !p.includes('401')), []);
    });

    await step(t, 'after logging in, everything', async () => {
        await page.$eval('#key', (k) => { k.value = ''; });
        await page.type('#key', key);
        await act(page, 'form.login button');
        await page.waitForFunction(() => document.body.dataset.ready === '#/people');
        const known = (await records('persons', 'list')).filter((p) => p.kind === 'known');
        assert.equal(await page.$$eval('.card.person', (c) => c.length), known.length);
        for (const img of await imagesLoaded(page)) assert.ok(img.width > 0, `${img.alt} loaded`);
        const cookies = await page.cookies();
        const session = cookies.find((c) => c.name === 'faceq_session');
        assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
        for (const hash of ['#/strangers', '#/stats', '#/models', '#/analyze', `#/person/${gallery['Hans Blix']}`])
            await show(page, hash);

        // A POST with the cookie but without the CSRF token is refused.
        const cookie = `faceq_session=${session.value}`;
        const r = await fetch(`${server.base}/api/persons/${gallery['Hans Blix']}/rename`, {method: 'POST',
            headers: {Cookie: cookie, 'Content-Type': 'application/json'}, body: JSON.stringify({name: 'Not Hans'})});
        assert.equal(r.status, 403);
        assert.equal((await r.json()).error.kind, 'csrf');
        assert.equal((await person(gallery['Hans Blix'])).name, 'Hans Blix');

        await act(page, '#logout');
        await page.waitForFunction(() => document.body.dataset.ready === 'login');
        assert.equal((await fetch(`${server.base}/api/persons`, {headers: {Cookie: cookie}})).status, 401);
    });
    await context.close();
});
