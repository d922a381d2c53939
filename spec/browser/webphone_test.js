// The browser test: two pages of the demo (examples/webphone/, JsSIP) in
// headless Debian chromium, driven by puppeteer-core, register to luasip
// (examples/webphone.lua) over WS or WSS; page A calls page B, B answers,
// the call is confirmed on both, A hangs up, both see the end.
//
//   node spec/browser/webphone_test.js URL [SPKI] [udp]
//
// With "udp" (browser <-> UDP through examples/webphone.lua): SIPp (run
// from here, in the same namespace) registers carol over UDP and answers
// as her (spec/browser/sipp_uas.xml); page A (alice) calls carol, the call
// is confirmed, A hangs up. Then a SIPp UAC (spec/browser/sipp_uac.xml)
// calls page B (bob), B answers, SIPp hangs up. Both scenarios check the
// proxy's double Record-Route (the UDP entry and the ;transport=ws one) in
// what they receive; their message traces are printed on a failure.
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
const udp = process.argv[4] === 'udp';
const label = (url.startsWith('https:') ? 'WSS' : 'WS') + (udp ? '<->UDP' : '');
const path = require('path');
const { spawn } = require('child_process');
const sippDir = path.join(process.env.HOME || '/tmp', 'sipp');
const sippRuns = [];

// SIPp, bounded (its own -timeout, and a kill after 40 s), in its own
// folder under $HOME/sipp/TAG; resolves to its exit code.
function sipp(tag, args) {
  const fs = require('fs');
  const cwd = path.join(sippDir, tag);
  fs.mkdirSync(cwd, { recursive: true });
  sippRuns.push(cwd);
  return new Promise((resolve) => {
    const child = spawn('sipp', ['127.0.0.1:5060', '-i', '127.0.0.1', '-m', '1', '-nostdin',
      '-timeout', '30s', '-trace_err', '-error_file', 'err.log', '-trace_msg',
      '-message_file', 'msg.log', ...args], { cwd, stdio: 'ignore' });
    const killer = setTimeout(() => child.kill('SIGKILL'), 40000);
    child.on('error', () => { clearTimeout(killer); resolve(-1); });
    child.on('exit', (code) => { clearTimeout(killer); resolve(code === null ? -1 : code); });
  });
}
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

// Browser <-> UDP: A calls carol (SIPp over UDP), dave (SIPp) calls B.
async function udpCalls(a, b) {
  const reg = await sipp('register', ['-sf', path.join(__dirname, '../sipp/proxy_reg.xml'),
    '-p', '5070', '-s', 'carol', '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port',
    '5070', '-key', 'tp', 'udp', '-key', 'q', '1']);
  check(reg === 0, `SIPp registers carol over UDP (rc ${reg})`);
  await a.evaluate(() => window.phone.register('alice'));
  await b.evaluate(() => window.phone.register('bob'));
  check(await waitFor(a, 'window.phone.registered', 10000), 'A registers');
  check(await waitFor(b, 'window.phone.registered', 10000), 'B registers');

  const uas = sipp('uas', ['-sf', path.join(__dirname, 'sipp_uas.xml'), '-p', '5070']);
  await new Promise((r) => setTimeout(r, 300)); // SIPp binds its port
  await a.evaluate(() => window.phone.call('carol'));
  check(await waitFor(a, "window.phone.state === 'confirmed'", 15000), 'A -> carol (UDP) confirmed');
  await a.evaluate(() => window.phone.hangup());
  check(await waitFor(a, 'window.phone.ended === 1', 10000), 'A sees the end');
  const urc = await uas;
  check(urc === 0, `the UDP callee saw INVITE (double Record-Route), ACK, BYE (rc ${urc})`);

  const uac = sipp('uac', ['-sf', path.join(__dirname, 'sipp_uac.xml'), '-p', '5072', '-s', 'bob']);
  check(await waitFor(b, "window.phone.state === 'ringing'", 10000), 'B rings (a UDP caller)');
  await b.evaluate(() => window.phone.answer());
  check(await waitFor(b, "window.phone.state === 'confirmed'", 15000), 'B confirmed');
  check(await waitFor(b, 'window.phone.ended === 1', 10000), 'B sees the UDP caller hang up');
  const crc = await uac;
  check(crc === 0, `the UDP caller saw 200 (double Record-Route), BYE answered (rc ${crc})`);
}

// On a failure: the end of each SIPp run's errors and message trace.
function dumpSipp() {
  const fs = require('fs');
  for (const dir of sippRuns) {
    for (const f of ['err.log', 'msg.log']) {
      let text;
      try { text = fs.readFileSync(path.join(dir, f), 'utf8'); } catch (e) { continue; }
      const lines = text.split('\n').slice(-60);
      console.log(`browser: ${label}: ${path.basename(dir)}/${f}:`);
      for (const l of lines) console.log(`  | ${l}`);
    }
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
    if (udp) {
      await udpCalls(a, b);
      return;
    }
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
    if (udp) dumpSipp();
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
