#!/usr/bin/env node
// tests/browser/status_page.mjs — a real-browser test of the CTA status page.
//
// Opens the page in headless Chromium (puppeteer-core, installed by scripts/browser-env) and
// checks what a person would see:
//   1. the table: exactly 94 `tr.station` rows in `table#status`, lines in contiguous groups
//      blue → green → red with 33 / 28 / 33 rows;
//   2. the weather: `#weather-temperature` shows a number and `#weather-status` some text
//      (waited for, since weather arrives once per simulated hour);
//   3. the live update: a train id shown in some row later shows in another row, without a
//      reload (a marker set on `window` after load survives, one navigation entry) and
//      without ever being shown in two rows at once (the DOM is sampled every 100 ms, and a
//      MutationObserver checks after every change the page makes);
//   4. a phone-sized view (390×844): no horizontal scrolling — a warning, not a failure.
// Screenshots: OUT (full page, 1280 wide, also on failure) and OUT-phone.png.
//
// Prints one JSON line on stdout and exits 0 when the page passes; on failure prints the
// reason on stderr (and a JSON line with "ok": false on stdout) and exits 1; bad arguments
// exit 2. A global time limit (3 × --timeout + 60 s) ends any run, and Chromium is closed
// (or killed) on every path.
//
//   NODE=$(scripts/browser-env) &&
//     "$NODE" tests/browser/status_page.mjs --url http://127.0.0.1:8080/ --screenshot target/browser/status.png
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import os from 'node:os';

const USAGE = `usage: node status_page.mjs --url URL --screenshot OUT.png [--timeout SECONDS] [--chromium PATH]

  --url URL          the status page (http://, https:// or file://)
  --screenshot PATH  full-page screenshot, written also on failure; the phone-sized one goes
                     beside it as <PATH without .png>-phone.png
  --timeout SECONDS  how long to wait for each of: the page to load, the weather, a train to
                     show, that train to move (default 60)
  --chromium PATH    Chromium binary (default: $CTA_CHROMIUM, else /usr/bin/chromium)

puppeteer-core is loaded through NODE_PATH: run this with the launcher that scripts/browser-env
prints. Exit status: 0 passed, 1 failed, 2 bad arguments.`;

const EXPECTED = { blue: 33, green: 28, red: 33 };
const EXPECTED_ORDER = ['blue', 'green', 'red'];
const EXPECTED_ROWS = 94;
const SAMPLE_MS = 100;
const DESKTOP = { width: 1280, height: 900, deviceScaleFactor: 1 };
// A plain 390 px wide window (no mobile emulation: that would zoom out to fit whatever
// overflows, and innerWidth would grow with the page).
const PHONE = { width: 390, height: 844, deviceScaleFactor: 1 };
const STEP_LIMIT_MS = 30_000; // launch, a screenshot, closing the browser

class Failure extends Error {}
class UsageError extends Error {}

// ------------------------------------------------------------------ arguments ---
function parseArgs(argv) {
  const opts = { url: null, screenshot: null, timeout: 60, chromium: process.env.CTA_CHROMIUM || '/usr/bin/chromium' };
  const names = new Map([['--url', 'url'], ['--screenshot', 'screenshot'], ['--timeout', 'timeout'], ['--chromium', 'chromium']]);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const key = names.get(arg);
    if (!key) throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      value = argv[++i];
    }
    opts[key] = value;
  }
  if (!opts.url) throw new UsageError('--url is required');
  if (!opts.screenshot) throw new UsageError('--screenshot is required');
  let url;
  try {
    url = new URL(opts.url);
  } catch {
    throw new UsageError(`--url ${JSON.stringify(opts.url)} is not a URL`);
  }
  if (!['http:', 'https:', 'file:'].includes(url.protocol)) throw new UsageError(`--url must be http://, https:// or file://, not ${url.protocol}`);
  const t = Number(opts.timeout);
  if (!/^\d+(\.\d+)?$/.test(String(opts.timeout).trim()) || !(t > 0) || t > 3600) {
    throw new UsageError(`--timeout must be a number of seconds in (0, 3600], not ${JSON.stringify(opts.timeout)}`);
  }
  opts.timeout = t;
  if (!opts.chromium) throw new UsageError('--chromium is empty');
  opts.screenshot = path.resolve(opts.screenshot);
  opts.phoneScreenshot = opts.screenshot.replace(/(\.[a-z0-9]+)?$/i, (ext) => `-phone${ext || '.png'}`);
  return opts;
}

// ------------------------------------------------------------------ helpers ---
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// resolves with the promise's value, or rejects with a Failure after ms
function within(ms, promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function imageType(file) {
  const ext = path.extname(file).toLowerCase();
  return ext === '.jpg' || ext === '.jpeg' ? 'jpeg' : ext === '.webp' ? 'webp' : 'png';
}

async function screenshot(page, file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const shot = (fullPage) => within(STEP_LIMIT_MS, page.screenshot({ path: file, fullPage, type: imageType(file) }), `screenshot ${file}`);
  try {
    await shot(true);
  } catch (err) {
    // Chromium's own error pages have no size to measure: take the viewport then
    if (!/0 width|0 height/.test(err.message)) throw err;
    await shot(false);
  }
}

function loadPuppeteer() {
  const require = createRequire(import.meta.url); // CommonJS resolution honours NODE_PATH
  try {
    return require('puppeteer-core');
  } catch (err) {
    throw new Failure(`cannot load puppeteer-core (${err.code || err.message}); run this with the launcher that scripts/browser-env prints (NODE_PATH=${process.env.NODE_PATH || 'unset'})`);
  }
}

// A temperature is a number, perhaps followed by a degree sign and F or C.
function parseTemperature(text) {
  const m = /^([-+]?\d+(?:\.\d+)?)\s*(?:°\s*[FC]?)?$/.exec((text || '').trim());
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------- in the page (DOM) ---
// Everything the checks read, in one round trip. Runs in the page: no closures.
function snapshotInPage(marker) {
  const text = (el) => (el ? el.textContent.replace(/\s+/g, ' ').trim() : null);
  const all = document.querySelectorAll('tr.station');
  const rows = [];
  for (const tr of all) {
    rows.push({
      line: tr.getAttribute('data-line'),
      id: tr.getAttribute('data-station-id'),
      inTable: !!tr.closest('table#status'),
      lineText: text(tr.querySelector('td.line')),
      name: text(tr.querySelector('td.name')),
      a: text(tr.querySelector('td.train-a')),
      b: text(tr.querySelector('td.train-b')),
      entries: text(tr.querySelector('td.entries')),
    });
  }
  const watch = window.__ctaStatusPageWatch || null;
  return {
    marker: window.__ctaStatusPageMarker === marker,
    navigations: performance.getEntriesByType('navigation').length,
    temperature: text(document.getElementById('weather-temperature')),
    status: text(document.getElementById('weather-status')),
    hasTemperature: !!document.getElementById('weather-temperature'),
    hasStatus: !!document.getElementById('weather-status'),
    rows,
    watch: watch && { checks: watch.checks, twice: watch.twice },
  };
}

// Checks after every DOM change the page makes (not only at the 100 ms samples) that the
// train is in at most one row; records the first time it was not.
function watchTrainInPage(train) {
  const rowsWith = () => {
    const out = [];
    document.querySelectorAll('tr.station').forEach((tr, index) => {
      for (const td of tr.querySelectorAll('td.train-a, td.train-b')) {
        if (td.textContent.split(/\s+/).includes(train)) {
          out.push({ index, line: tr.getAttribute('data-line'), id: tr.getAttribute('data-station-id') });
          break;
        }
      }
    });
    return out;
  };
  const watch = { train, checks: 0, twice: null };
  window.__ctaStatusPageWatch = watch;
  const check = () => {
    watch.checks++;
    const rows = rowsWith();
    if (rows.length > 1 && !watch.twice) watch.twice = { rows, at: performance.now() };
  };
  new MutationObserver(check).observe(document.documentElement, { subtree: true, childList: true, characterData: true });
  check();
}

// The phone-sized view: widths and the viewport meta tag.
function layoutInPage() {
  const meta = document.querySelector('meta[name="viewport"]');
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    clientWidth: document.documentElement.clientWidth,
    metaViewport: meta ? meta.getAttribute('content') : null,
    rows: document.querySelectorAll('tr.station').length,
  };
}

// ------------------------------------------------------------------ checks ---
function checkTable(snap) {
  const { rows } = snap;
  const counts = {};
  for (const r of rows) counts[r.line] = (counts[r.line] || 0) + 1;
  const runs = [];
  for (const r of rows) if (runs[runs.length - 1] !== r.line) runs.push(r.line);
  const problems = [];
  const warnings = [];
  if (rows.length !== EXPECTED_ROWS) problems.push(`${rows.length} tr.station rows, expected ${EXPECTED_ROWS}`);
  const outside = rows.filter((r) => !r.inTable).length;
  if (outside) problems.push(`${outside} tr.station rows are not inside table#status`);
  if (runs.join(',') !== EXPECTED_ORDER.join(',')) problems.push(`lines in the order ${runs.join(' → ')}, expected blue → green → red in contiguous groups`);
  for (const line of EXPECTED_ORDER) {
    if ((counts[line] || 0) !== EXPECTED[line]) problems.push(`${counts[line] || 0} ${line} rows, expected ${EXPECTED[line]}`);
  }
  const odd = Object.keys(counts).filter((l) => !EXPECTED_ORDER.includes(l));
  if (odd.length) problems.push(`rows of unknown lines: ${odd.map((l) => JSON.stringify(l)).join(', ')}`);
  const noId = rows.filter((r) => !r.id).length;
  if (noId) problems.push(`${noId} rows without data-station-id`);
  const noCells = rows.filter((r) => r.a === null || r.b === null || r.name === null).length;
  if (noCells) problems.push(`${noCells} rows lack a td.name, td.train-a or td.train-b cell`);
  const lineText = rows.filter((r) => r.lineText !== r.line).length;
  if (lineText) warnings.push(`${lineText} rows whose td.line text differs from data-line`);
  const entries = rows.filter((r) => !/^\d+$/.test(r.entries || '')).length;
  if (entries) warnings.push(`${entries} rows whose td.entries is not an integer`);
  if (!snap.hasTemperature) problems.push('no #weather-temperature element');
  if (!snap.hasStatus) problems.push('no #weather-status element');
  if (problems.length) throw new Failure(`the status table: ${problems.join('; ')}`);
  return { counts, warnings };
}

function rowsShowing(rows, train) {
  const out = [];
  rows.forEach((r, index) => {
    for (const cell of ['a', 'b']) {
      if ((r[cell] || '').split(' ').includes(train)) {
        out.push({ index, line: r.line, station_id: r.id, name: r.name, cell: `train-${cell}` });
        break;
      }
    }
  });
  return out;
}

function firstTrain(rows) {
  for (const [index, r] of rows.entries()) {
    for (const cell of ['a', 'b']) {
      const id = (r[cell] || '').split(' ').find(Boolean);
      if (id) return { id, index, cell: `train-${cell}` };
    }
  }
  return null;
}

const describe = (r) => `${r.line} ${r.name} (${r.station_id}, ${r.cell})`;

// ------------------------------------------------------------------ the run ---
async function run(opts, ctx) {
  const T = opts.timeout * 1000;
  const { report } = ctx;
  const puppeteer = loadPuppeteer();
  try {
    fs.accessSync(opts.chromium, fs.constants.X_OK);
  } catch {
    throw new Failure(`Chromium not found or not executable at ${opts.chromium} (install it: apt-get install chromium, or scripts/setup)`);
  }

  ctx.phase = 'launching Chromium';
  // a profile of our own, removed on every way out (puppeteer's is left behind on a kill)
  ctx.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cta-status-page-'));
  ctx.browser = await within(
    STEP_LIMIT_MS + 5000,
    puppeteer.launch({
      executablePath: opts.chromium,
      userDataDir: ctx.profile,
      headless: true,
      pipe: true,
      timeout: STEP_LIMIT_MS,
      protocolTimeout: STEP_LIMIT_MS,
      // main() handles these: it says why it stops, then kills the browser
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      defaultViewport: DESKTOP,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        // no connections to the outside: this machine's network is closed
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
    'launching Chromium',
  );
  report.chromium = await ctx.browser.version();

  const page = (ctx.page = await ctx.browser.newPage());
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations++;
  });
  page.on('pageerror', (err) => ctx.pageErrors.push(`page error: ${String(err && err.message ? err.message : err).split('\n')[0]}`));
  page.on('console', (msg) => {
    // a missing favicon is the browser's own request, not the page's error
    if (msg.type() === 'error' && !/\/favicon\.ico$/.test(msg.location()?.url || '')) {
      ctx.pageErrors.push(`console error: ${msg.text().split('\n')[0]}${msg.location()?.url ? ` (${msg.location().url})` : ''}`);
    }
  });

  ctx.phase = `loading ${opts.url}`;
  const started = Date.now();
  let response;
  try {
    response = await page.goto(opts.url, { waitUntil: 'load', timeout: T });
  } catch (err) {
    throw new Failure(`loading ${opts.url}: ${err.message.split('\n')[0]}`);
  }
  if (/^https?:/.test(opts.url) && (!response || !response.ok())) {
    throw new Failure(`GET ${opts.url} answered HTTP ${response ? response.status() : 'nothing'}`);
  }
  report.load_ms = Date.now() - started;
  const navigationsAtLoad = navigations;
  const marker = randomUUID();
  await page.evaluate((m) => {
    window.__ctaStatusPageMarker = m;
  }, marker);
  const loadedAt = Date.now();

  // 1. the table, as served
  ctx.phase = 'checking the table';
  let snap = await page.evaluate(snapshotInPage, marker);
  const table = checkTable(snap);
  report.rows = snap.rows.length;
  report.lines = table.counts;
  ctx.warnings.push(...table.warnings);
  ctx.lineOf = snap.rows.map((r) => r.line); // rows must not change lines later

  // 2 and 3. sample every 100 ms: weather, the train, no reload, never two rows
  ctx.phase = 'waiting for the weather and a train to move';
  let weather = null;
  let train = null; // { id, from, pickedAt }
  let moved = null;
  let samples = 0;
  let hidden = 0; // samples in which the train showed nowhere
  const othersTwice = new Set();
  for (;;) {
    const t0 = Date.now();
    try {
      snap = await page.evaluate(snapshotInPage, marker);
    } catch (err) {
      // a reload destroys the execution context under our feet
      if (/context was destroyed|navigat|Target closed|detached/i.test(err.message)) {
        throw new Failure(`the page reloaded or navigated away while it should update in place (${err.message.split('\n')[0]})`);
      }
      if (/timed out/i.test(err.message)) {
        throw new Failure(`the page did not answer within ${STEP_LIMIT_MS / 1000} s: its main thread looks stuck (${err.message.split('\n')[0]})`);
      }
      throw err;
    }
    samples++;
    if (navigations !== navigationsAtLoad) throw new Failure(`the page navigated ${navigations - navigationsAtLoad} time(s) after load (to ${page.url()}); it must update in place`);
    if (!snap.marker) throw new Failure('the page reloaded: the marker set on window after load is gone');
    if (snap.navigations !== 1) throw new Failure(`performance.getEntriesByType('navigation').length is ${snap.navigations}, expected 1`);
    if (snap.rows.length !== EXPECTED_ROWS) throw new Failure(`the table now has ${snap.rows.length} tr.station rows, expected ${EXPECTED_ROWS} throughout`);
    for (const [i, r] of snap.rows.entries()) {
      if (r.line !== ctx.lineOf[i]) throw new Failure(`row ${i} changed from line ${ctx.lineOf[i]} to ${r.line}`);
    }

    const now = Date.now();
    if (!weather) {
      const temperature = parseTemperature(snap.temperature);
      if (temperature !== null && snap.status && snap.status !== '—') {
        weather = { temperature, temperature_text: snap.temperature, status: snap.status, waited_ms: now - loadedAt };
        report.weather = weather;
      } else if (now - loadedAt > T) {
        throw new Failure(`no weather within ${opts.timeout} s: #weather-temperature is ${JSON.stringify(snap.temperature)}, #weather-status is ${JSON.stringify(snap.status)}`);
      }
    }

    if (!train) {
      const first = firstTrain(snap.rows);
      if (first) {
        const from = rowsShowing(snap.rows, first.id);
        train = { id: first.id, from: from[0], pickedAt: now };
        report.train = { id: first.id, from: from[0] };
        if (from.length > 1) throw new Failure(`train ${first.id} is shown in ${from.length} rows at once: ${from.map(describe).join(' and ')}`);
        await page.evaluate(watchTrainInPage, first.id);
      } else if (now - loadedAt > T) {
        throw new Failure(`no train id shown in any td.train-a or td.train-b cell within ${opts.timeout} s`);
      }
    } else {
      const at = rowsShowing(snap.rows, train.id);
      if (at.length > 1) throw new Failure(`train ${train.id} is shown in ${at.length} rows at once: ${at.map(describe).join(' and ')}`);
      if (snap.watch && snap.watch.twice) {
        const rows = snap.watch.twice.rows.map((r) => `${r.line} ${r.id}`).join(' and ');
        throw new Failure(`train ${train.id} was shown in two rows at once (${rows}), seen by the page's MutationObserver between two samples`);
      }
      if (!moved) {
        if (at.length === 0) hidden++;
        if (at.length === 1 && at[0].index !== train.from.index) {
          moved = { to: at[0], ms: now - train.pickedAt };
          Object.assign(report.train, { to: at[0], moved_ms: moved.ms });
        } else if (now - train.pickedAt > T) {
          const where = at.length ? `still at ${describe(at[0])}` : 'shown nowhere now';
          throw new Failure(`train ${train.id} did not move from ${describe(train.from)} within ${opts.timeout} s (${where})`);
        }
      }
    }
    // others shown twice are the page's bug too, but not the one this check follows
    const seen = new Map();
    for (const r of snap.rows) {
      for (const id of new Set(`${r.a || ''} ${r.b || ''}`.split(' ').filter(Boolean))) {
        if (seen.has(id)) othersTwice.add(id);
        seen.set(id, true);
      }
    }
    if (weather && moved) break;
    await sleep(Math.max(0, SAMPLE_MS - (Date.now() - t0)));
  }
  report.train.samples = samples;
  report.train.hidden_samples = hidden;
  report.train.mutation_checks = snap.watch ? snap.watch.checks : 0;
  if (othersTwice.size) ctx.warnings.push(`other trains shown in two rows at once: ${[...othersTwice].slice(0, 10).join(' ')}`);
  report.no_reload = { marker: snap.marker, navigation_entries: snap.navigations };

  // 4. screenshots: the page as it is now, then a fresh phone-sized view
  ctx.phase = 'taking the screenshot';
  await screenshot(page, opts.screenshot);
  report.screenshot = opts.screenshot;
  ctx.screenshotTaken = true;

  ctx.phase = 'checking the phone-sized view';
  try {
    await checkPhone(opts, ctx);
  } catch (err) {
    // the phone view only warns: the page's author fixes what it shows
    ctx.warnings.push(`phone: the check could not run: ${err.message.split('\n')[0]}`);
  }
}

// 4. a fresh page in a phone-sized window: its screenshot, and no sideways scrolling
async function checkPhone(opts, ctx) {
  const { report } = ctx;
  const phone = await ctx.browser.newPage();
  await phone.setViewport(PHONE);
  await phone.goto(opts.url, { waitUntil: 'load', timeout: Math.min(opts.timeout * 1000, STEP_LIMIT_MS) });
  await sleep(500); // let the live updates land once
  const layout = await phone.evaluate(layoutInPage);
  await screenshot(phone, opts.phoneScreenshot);
  const overflow = layout.scrollWidth > layout.innerWidth + 1;
  report.phone = {
    width: PHONE.width,
    height: PHONE.height,
    screenshot: opts.phoneScreenshot,
    scroll_width: layout.scrollWidth,
    inner_width: layout.innerWidth,
    horizontal_scroll: overflow,
    meta_viewport: layout.metaViewport,
  };
  if (!layout.metaViewport || !/width\s*=\s*device-width/.test(layout.metaViewport)) {
    ctx.warnings.push('phone: no <meta name="viewport" content="width=device-width, initial-scale=1">: phones lay the page out 980 px wide and shrink it');
  }
  if (overflow) {
    ctx.warnings.push(`phone: the page scrolls sideways at ${PHONE.width}×${PHONE.height}: document.documentElement.scrollWidth ${layout.scrollWidth} > innerWidth ${layout.innerWidth}`);
  }
  await phone.close();
}

// closes the browser, and kills it if it does not close in time
async function closeBrowser(browser) {
  if (!browser) return;
  const proc = browser.process();
  try {
    await within(10_000, browser.close(), 'closing Chromium');
  } catch {
    // fall through to the kill
  }
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function removeProfile(ctx) {
  if (!ctx.profile) return;
  try {
    fs.rmSync(ctx.profile, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // a leftover temporary directory is no reason to fail
  }
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`status_page: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }

  const started = Date.now();
  const report = { ok: false, url: opts.url };
  const ctx = { report, warnings: [], pageErrors: [], browser: null, page: null, phase: 'starting', screenshotTaken: false, lineOf: [] };

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(signal, () => {
      process.stderr.write(`status_page: FAIL: interrupted by ${signal} while ${ctx.phase}\n`);
      const proc = ctx.browser && ctx.browser.process();
      if (proc && proc.exitCode === null) proc.kill('SIGKILL');
      removeProfile(ctx);
      process.exit(code);
    });
  }

  const globalMs = opts.timeout * 3000 + 60_000;
  let globalTimer;
  const global = new Promise((_, reject) => {
    globalTimer = setTimeout(() => reject(new Failure(`gave up after the global limit of ${Math.round(globalMs / 1000)} s, while ${ctx.phase}`)), globalMs);
  });

  let failure = null;
  try {
    await Promise.race([run(opts, ctx), global]);
  } catch (err) {
    failure = err;
  }
  clearTimeout(globalTimer);
  // whatever happens from here on, the process ends
  setTimeout(() => {
    process.stderr.write('status_page: error: could not shut down cleanly; exiting\n');
    process.exit(1);
  }, 45_000).unref();

  if (failure && ctx.page && !ctx.screenshotTaken) {
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        await screenshot(ctx.page, opts.screenshot);
        report.screenshot = opts.screenshot;
        break;
      } catch (err) {
        // a failed load swaps in Chromium's error page: give it a moment once
        if (attempt === 1 && /Not attached|detached|Session closed/i.test(err.message) && ctx.browser && ctx.browser.connected) {
          await sleep(500);
          continue;
        }
        process.stderr.write(`status_page: the failure screenshot failed too: ${err.message.split('\n')[0]}\n`);
        break;
      }
    }
  }
  await closeBrowser(ctx.browser);
  removeProfile(ctx);

  const warnings = [...ctx.warnings];
  if (ctx.pageErrors.length) warnings.push(...ctx.pageErrors.slice(0, 5), ...(ctx.pageErrors.length > 5 ? [`and ${ctx.pageErrors.length - 5} more page errors`] : []));
  report.warnings = warnings;
  report.elapsed_ms = Date.now() - started;
  if (failure) {
    const reason = failure instanceof Failure ? failure.message : `unexpected error while ${ctx.phase}: ${failure.stack || failure}`;
    report.error = reason;
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.stderr.write(`status_page: FAIL: ${reason}\n`);
    if (report.screenshot) process.stderr.write(`status_page: screenshot: ${report.screenshot}\n`);
    process.exitCode = 1;
  } else {
    report.ok = true;
    process.stdout.write(`${JSON.stringify(report)}\n`);
    process.exitCode = 0;
  }
  // puppeteer may leave handles (pipes, timers) behind: do not wait for them
  process.exit(process.exitCode);
}

main();
