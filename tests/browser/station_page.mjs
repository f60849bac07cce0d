#!/usr/bin/env node
// tests/browser/station_page.mjs — a real-browser test of a CTA station page.
//
// Opens /stations/{id} in headless Chromium (puppeteer-core, installed by scripts/browser-env)
// and checks what a person would see:
//   1. the chart: exactly 24 `rect.bar` in `#chart svg` for the 24 hours of
//      `entries_per_hour` of /api/stations/{id}, each bar's `data-entries` between the API's
//      count before and after the page was read (the simulation keeps counting);
//   2. the station's name in `#station-name` equals the API's `name`;
//   3. no console warning or error, no page error;
//   4. a phone-sized view (390×844): no horizontal scrolling, the chart within the width.
// Screenshots: OUT (1280 wide) and OUT-phone.png, kept as test artifacts.
//
// Prints one JSON line on stdout; exits 0 when the page passes, 1 when it fails (the reason
// on stderr too), 2 on bad arguments.
//
//   NODE=$(scripts/browser-env) &&
//     "$NODE" tests/browser/station_page.mjs --url http://127.0.0.1:8080/stations/40380 --screenshot target/browser/station.png
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const USAGE = `usage: node station_page.mjs --url URL --screenshot OUT.png [--timeout SECONDS] [--chromium PATH]`;
const DESKTOP = { width: 1280, height: 900, deviceScaleFactor: 1 };
const PHONE = { width: 390, height: 844, deviceScaleFactor: 1 };

class Failure extends Error {}

function parseArgs(argv) {
  const opts = { url: null, screenshot: null, timeout: 60, chromium: process.env.CTA_CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--url') opts.url = v;
    else if (k === '--screenshot') opts.screenshot = path.resolve(v);
    else if (k === '--timeout') opts.timeout = Number(v);
    else if (k === '--chromium') opts.chromium = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!opts.url || !opts.screenshot || !(opts.timeout > 0)) throw new Error('--url and --screenshot are required, --timeout must be above 0');
  return opts;
}

function within(ms, promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function run(opts, ctx) {
  const require = createRequire(import.meta.url);
  let puppeteer;
  try {
    puppeteer = require('puppeteer-core');
  } catch (err) {
    throw new Failure(`cannot load puppeteer-core (${err.code || err.message}); run this with the launcher that scripts/browser-env prints`);
  }
  const T = opts.timeout * 1000;
  ctx.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cta-station-page-'));
  ctx.browser = await within(T, puppeteer.launch({
    executablePath: opts.chromium, userDataDir: ctx.profile, headless: true, pipe: true,
    timeout: T, protocolTimeout: T, defaultViewport: DESKTOP,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  }), 'launching Chromium');
  ctx.report.chromium = await ctx.browser.version();
  const page = (ctx.page = await ctx.browser.newPage());
  page.on('pageerror', (err) => ctx.problems.push(`page error: ${String(err && err.message ? err.message : err).split('\n')[0]}`));
  page.on('console', (msg) => {
    if (!['error', 'warn', 'warning'].includes(msg.type())) return;
    if (/\/favicon\.ico$/.test(msg.location()?.url || '')) return; // the browser's own request
    ctx.problems.push(`console ${msg.type()}: ${msg.text().split('\n')[0]}`);
  });
  const response = await page.goto(opts.url, { waitUntil: 'load', timeout: T });
  if (!response || response.status() !== 200) throw new Failure(`${opts.url} answered ${response ? response.status() : 'nothing'}`);
  const apiUrl = opts.url.replace(/\/stations\//, '/api/stations/');
  // The simulation keeps counting while the page loads: the page is read between two
  // reads of the API, and each bar must lie between them (equal when nothing moved).
  // When the newest hour rolled over meanwhile the hours differ: try again.
  const fetchApi = () => page.evaluate(async (api) => {
    const r = await fetch(api);
    return { status: r.status, data: await r.json() };
  }, apiUrl);
  let seen = null;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const before = await fetchApi();
    if (before.status !== 200) throw new Failure(`${apiUrl} answered ${before.status}`);
    await page.reload({ waitUntil: 'load', timeout: T });
    const shown = await page.evaluate(() => {
      const bars = [...document.querySelectorAll('#chart svg rect.bar')];
      return {
        entries: bars.map((b) => Number(b.getAttribute('data-entries'))),
        hours: bars.map((b) => b.getAttribute('data-hour')),
        name: (document.getElementById('station-name') || {}).textContent,
      };
    });
    const after = await fetchApi();
    const hours = (d) => (d.entries_per_hour || []).map((b) => b.label);
    const counts = (d) => (d.entries_per_hour || []).map((b) => b.entries);
    seen = { shown, before: counts(before.data), after: counts(after.data), name: after.data.name };
    if (JSON.stringify(hours(before.data)) !== JSON.stringify(hours(after.data)) || JSON.stringify(shown.hours) !== JSON.stringify(hours(after.data))) continue;
    break;
  }
  ctx.report.bars = seen.shown.entries.length;
  ctx.report.entries_per_hour = seen.after;
  if (seen.shown.entries.length !== 24) throw new Failure(`the chart has ${seen.shown.entries.length} bars, not 24`);
  if (seen.after.length !== 24) throw new Failure(`the API has ${seen.after.length} hours, not 24`);
  const off = seen.shown.entries.findIndex((n, i) => !(seen.before[i] <= n && n <= seen.after[i]));
  if (off >= 0) throw new Failure(`bar ${off} (${seen.shown.hours[off]}) shows ${seen.shown.entries[off]}, the API had ${seen.before[off]} before and ${seen.after[off]} after: bars ${JSON.stringify(seen.shown.entries)}, API ${JSON.stringify(seen.after)}`);
  if ((seen.shown.name || '').trim() !== seen.name) throw new Failure(`the page names "${seen.shown.name}", the API "${seen.name}"`);
  fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
  await page.screenshot({ path: opts.screenshot, fullPage: true });
  ctx.report.screenshot = opts.screenshot;

  await page.setViewport(PHONE);
  await page.reload({ waitUntil: 'load', timeout: T });
  const layout = await page.evaluate(() => {
    const svg = document.querySelector('#chart svg');
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      chartRight: svg ? svg.getBoundingClientRect().right : null,
    };
  });
  ctx.report.phone = layout;
  const phoneShot = opts.screenshot.replace(/(\.png)?$/i, '-phone.png');
  await page.screenshot({ path: phoneShot, fullPage: true });
  ctx.report.phone_screenshot = phoneShot;
  if (layout.scrollWidth > layout.innerWidth) throw new Failure(`phone: the page scrolls sideways: scrollWidth ${layout.scrollWidth} > innerWidth ${layout.innerWidth}`);
  if (layout.chartRight !== null && layout.chartRight > layout.innerWidth) throw new Failure(`phone: the chart ends at ${layout.chartRight} px, past ${layout.innerWidth}`);
  if (ctx.problems.length) throw new Failure(ctx.problems.slice(0, 5).join('; '));
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`station_page: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const ctx = { report: { ok: false, url: opts.url }, problems: [], browser: null, page: null, profile: null };
  const limit = setTimeout(() => {
    process.stderr.write('station_page: FAIL: global time limit\n');
    const proc = ctx.browser && ctx.browser.process();
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    process.exit(1);
  }, opts.timeout * 3000 + 60_000);
  let failure = null;
  try {
    await run(opts, ctx);
  } catch (err) {
    failure = err;
    if (ctx.page && !ctx.report.screenshot) {
      try { await ctx.page.screenshot({ path: opts.screenshot, fullPage: true }); ctx.report.screenshot = opts.screenshot; } catch (_) { /* the failure is what matters */ }
    }
  }
  clearTimeout(limit);
  if (ctx.browser) {
    try { await within(10_000, ctx.browser.close(), 'closing Chromium'); } catch (_) {
      const proc = ctx.browser.process();
      if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    }
  }
  if (ctx.profile) fs.rmSync(ctx.profile, { recursive: true, force: true });
  if (failure) {
    ctx.report.error = failure instanceof Failure ? failure.message : String(failure.stack || failure);
    process.stdout.write(`${JSON.stringify(ctx.report)}\n`);
    process.stderr.write(`station_page: FAIL: ${ctx.report.error}\n`);
    process.exit(1);
  }
  ctx.report.ok = true;
  process.stdout.write(`${JSON.stringify(ctx.report)}\n`);
  process.exit(0);
}

main();
