// The browser test: two pages of the demo (examples/webphone/, JsSIP) in
// headless Debian chromium, driven by puppeteer-core, register to luasip
// (examples/webphone.lua) over WS or WSS; page A calls page B, B answers,
// the call is confirmed on both, A hangs up, both see the end.
//
//   node spec/browser/webphone_test.js URL [SPKI]
//
// URL: the page (http://127.0.0.1:PORT/ or https://...); SPKI: the base64
// SHA-256 of the test server's public key, the only certificate chromium
// then accepts besides its own roots (--ignore-certificate-errors-spki-list).
// Run by spec/browser/run.sh inside a loopback-only network namespace.
// Prints "browser: N passed, N failed" (one check per step); every wait is
// bounded.
'use strict';
const puppeteer = require('puppeteer-core');

const url = process.argv[2];
const spki = process.argv[3];
const label = url.startsWith('https:') ? 'WSS' : 'WS';
let passed = 0;
let failed = 0;

// One step: counted; a failed step ends the scenario (the next ones
// depend on it).
function check(ok, what) {
  if (ok) {
    passed++;
    return ok;
  }
  failed++;
  console.log(`browser: ${label}: FAILED: ${what}`);
  throw new Error('step failed');
}

async function waitFor(page, expr, ms) {
  try {
    await page.waitForFunction(expr, { timeout: ms, polling: 50 });
    return true;
  } catch (e) {
    return false;
  }
}

async function main() {
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--metrics-recording-only',
    // the namespace has loopback only: let WebRTC gather candidates there
    '--allow-loopback-in-peer-connection',
  ];
  if (spki) args.push(`--ignore-certificate-errors-spki-list=${spki}`);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    timeout: 30000,
  });
  const timer = setTimeout(() => {
    console.log(`browser: ${label}: FAILED: the test took over 90 s`);
    console.log(`browser: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, 90000);
  const pages = [await browser.newPage(), await browser.newPage()];
  try {
    for (const p of pages) {
      p.on('pageerror', (e) => console.log(`browser: ${label}: page error: ${e.message}`));
    }
    const [a, b] = pages;
    for (const p of pages) {
      const res = await p.goto(url, { timeout: 15000 });
      check(res && res.status() === 200, `the page loads (${res && res.status()})`);
    }
    check(await a.evaluate(() => typeof JsSIP === 'object'), 'JsSIP is loaded');
    await a.evaluate(() => window.phone.register('alice'));
    await b.evaluate(() => window.phone.register('bob'));
    check(await waitFor(a, 'window.phone.registered', 10000), 'A registers');
    check(await waitFor(b, 'window.phone.registered', 10000), 'B registers');
    await a.evaluate(() => window.phone.call('bob'));
    check(await waitFor(b, "window.phone.state === 'ringing'", 10000), 'B rings');
    await b.evaluate(() => window.phone.answer());
    check(await waitFor(a, "window.phone.state === 'confirmed'", 15000), 'A confirmed');
    check(await waitFor(b, "window.phone.state === 'confirmed'", 15000), 'B confirmed');
    await a.evaluate(() => window.phone.hangup());
    check(await waitFor(a, 'window.phone.ended === 1', 10000), 'A sees the end');
    check(await waitFor(b, 'window.phone.ended === 1', 10000), 'B sees the end');
  } catch (e) {
    if (e.message !== 'step failed') {
      failed++;
      console.log(`browser: ${label}: FAILED: ${e && e.stack}`);
    }
    for (const [name, p] of pages.map((p, i) => [i ? 'B' : 'A', p])) {
      const events = await p.evaluate(() => window.phone && window.phone.events).catch(() => null);
      console.log(`browser: ${label}: page ${name} events: ${JSON.stringify(events)}`);
    }
  } finally {
    clearTimeout(timer);
    await browser.close();
  }
}

main().then(() => {
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}, (e) => {
  console.log(`browser: ${label}: FAILED: ${e && e.stack}`);
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
