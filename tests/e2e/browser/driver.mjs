// Drives Debian's Chromium for the browser end-to-end tests (tests/e2e/browser.py).
//
// Launches Chromium once (playwright-core, executablePath /usr/bin/chromium, a fresh
// profile), then reads one JSON command per line on stdin and answers each with one
// JSON line on stdout, carrying the command's "id":
//
//   {"id":1,"cmd":"open","page":"alice","url":"http://127.0.0.1:PORT/phone.html"}
//   {"id":2,"cmd":"eval","page":"alice","expr":"phone.call('sip:600@127.0.0.1')","timeout":10}
//   {"id":3,"cmd":"screenshot","page":"alice","path":"/tmp/alice.png"}
//   {"id":4,"cmd":"close_page","page":"alice"}
//   {"id":5,"cmd":"close"}
//
//   -> {"id":2,"value":<the expression's value, promises awaited, as JSON>}
//   -> {"id":2,"error":"what went wrong"}
//
// The first line out is {"ready":"<Chromium version>"}, once the browser is up.
// Commands run concurrently (a page may wait for a call while another places it);
// answers come in the order they finish. Each page gets a browser context of its own,
// so two phones on one browser share nothing. Everything the pages log (console,
// uncaught errors, failed requests, crashes) and every WebSocket frame they send or
// receive goes to stderr, one entry per line, prefixed with the page's name.
//
// Environment: WEDGE_CHROMIUM (default /usr/bin/chromium), WEDGE_CHROMIUM_ARGS (more
// flags, space separated). Exit: stdin closing or "close" closes the browser.

import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

// playwright-core is web-demo's devDependency (web-demo/node_modules).
const require = createRequire(new URL('../../../web-demo/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.WEDGE_CHROMIUM || '/usr/bin/chromium';

// Why each flag is here:
const ARGS = [
  '--headless', // no display on a test machine
  '--no-sandbox', // runs as root in containers, where the sandbox cannot start
  '--disable-gpu', // no GPU; software rendering only
  '--disable-quic',
  '--no-first-run',
  // Without these Chromium calls Google (updates, sync, field trials, safe browsing)
  // and the closed network refuses: slow starts and noise in the log.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  // getUserMedia answered without a prompt, from a fake microphone (a beep).
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  // Remote audio plays in an <audio> element nobody clicked on.
  '--autoplay-policy=no-user-gesture-required',
  // ICE on 127.0.0.1: Chromium leaves loopback addresses out of its host candidates
  // unless told. (It would also hide host addresses behind random .local mDNS names,
  // but not from a page holding microphone permission, which every page here has:
  // see newContext below. --disable-features=WebRtcHideLocalIpsWithMdns is NOT used:
  // Chromium keeps only the last --disable-features, so it would silently drop the
  // list playwright passes.)
  '--allow-loopback-in-peer-connection',
  ...(process.env.WEDGE_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean),
];

function log(...parts) {
  process.stderr.write(parts.join(' ') + '\n');
}

function answer(reply) {
  process.stdout.write(JSON.stringify(reply) + '\n');
}

function describe(error) {
  if (error instanceof Error) return error.message.split('\n=====')[0]; // no call log
  return String(error);
}

function withTimeout(promise, seconds, what) {
  if (!seconds) return promise;
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no result within ${seconds} s`)),
      seconds * 1000,
    );
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// playwright makes the fresh --user-data-dir itself (under $TMPDIR) and removes it
// when the browser closes.
const browser = await chromium.launch({
  executablePath: EXECUTABLE,
  headless: true,
  args: ARGS,
  timeout: 30_000,
});
log(`[driver] ${EXECUTABLE} ${browser.version()} started`);
answer({ ready: browser.version() });

const pages = new Map();

function watch(name, page) {
  page.on('console', (message) =>
    log(`[${name}] console.${message.type()}: ${message.text()}`),
  );
  page.on('pageerror', (error) => log(`[${name}] page error: ${error.stack || error}`));
  page.on('requestfailed', (request) =>
    log(`[${name}] request failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on('crash', () => log(`[${name}] page crashed`));
  page.on('websocket', (socket) => {
    log(`[${name}] websocket open ${socket.url()}`);
    const frame = (arrow) => (event) => {
      const text = typeof event.payload === 'string' ? event.payload : '<binary>';
      log(`[${name}] ws ${arrow}\n    ${text.trimEnd().split(/\r?\n/).join('\n    ')}`);
    };
    socket.on('framesent', frame('>>'));
    socket.on('framereceived', frame('<<'));
    socket.on('socketerror', (error) => log(`[${name}] websocket error ${error}`));
    socket.on('close', () => log(`[${name}] websocket closed ${socket.url()}`));
  });
}

function pageNamed(name) {
  const page = pages.get(name);
  if (!page) throw new Error(`no page named ${JSON.stringify(name)} (open it first)`);
  return page;
}

const COMMANDS = {
  async open({ page: name, url, timeout }) {
    if (pages.has(name)) throw new Error(`page ${JSON.stringify(name)} is already open`);
    // Microphone permission up front (the fake device answers getUserMedia); with it,
    // ICE candidates carry plain addresses, not mDNS names.
    const context = await browser.newContext({ permissions: ['microphone'] });
    const page = await context.newPage();
    pages.set(name, page);
    watch(name, page);
    await page.goto(url, { timeout: (timeout || 10) * 1000, waitUntil: 'load' });
    return { url: page.url(), title: await page.title() };
  },

  async eval({ page: name, expr, timeout }) {
    const page = pageNamed(name);
    // A string is evaluated as an expression; a promise it gives is awaited.
    const value = await withTimeout(page.evaluate(expr), timeout, `eval ${expr}`);
    return value === undefined ? null : value;
  },

  async screenshot({ page: name, path }) {
    await pageNamed(name).screenshot({ path, fullPage: true, timeout: 5_000 });
    return path;
  },

  async close_page({ page: name }) {
    const page = pageNamed(name);
    pages.delete(name);
    await page.context().close();
    return null;
  },

  async close() {
    await shutdown(0);
    return null;
  },
};

let closing = false;

async function shutdown(code) {
  if (closing) return;
  closing = true;
  try {
    await withTimeout(browser.close(), 10, 'browser.close');
  } catch (error) {
    log(`[driver] closing the browser: ${describe(error)}`);
  }
  log('[driver] browser closed');
  process.exitCode = code;
}

async function run(line) {
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    answer({ id: null, error: `not JSON: ${describe(error)}: ${line}` });
    return;
  }
  const { id = null, cmd } = command;
  const handler = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!handler) {
    answer({ id, error: `unknown command ${JSON.stringify(cmd)}` });
    return;
  }
  try {
    answer({ id, value: await handler(command) });
  } catch (error) {
    answer({ id, error: describe(error) });
  }
}

browser.on('disconnected', () => {
  if (!closing) {
    log('[driver] the browser went away');
    process.exit(3);
  }
});

const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
const running = new Set();
for await (const line of input) {
  if (!line.trim()) continue;
  const task = run(line);
  running.add(task);
  task.finally(() => running.delete(task));
  if (closing) break;
}
await Promise.allSettled(running);
await shutdown(0);
