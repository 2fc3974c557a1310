// How long the phone app takes to become usable on a slow network: opens
// the app in a headless Chromium as a phone under a throttled network
// profile and times from navigation until the signed-in home screen is
// drawn with its controls wired, on a first visit (nothing cached) and on
// a second one (the service worker's shell), and counts the bytes that
// crossed the network. For docs/PERFORMANCE.md; asserts nothing.
//
//   node --experimental-websocket src/field/measure-load.mjs 'http://127.0.0.1:8080/field/#t=TOKEN&a=ID'
//
// (Node 22 and later have WebSocket without the flag.)
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Chrome DevTools' presets (latency in ms, throughput in bytes/s).
const PROFILES = {
  "Slow 3G": { latency: 2000, downloadThroughput: (500 * 1000) / 8 * 0.8, uploadThroughput: (500 * 1000) / 8 * 0.8 },
  "Fast 3G": { latency: 562.5, downloadThroughput: (1.6 * 1000 * 1000) / 8 * 0.9, uploadThroughput: (750 * 1000) / 8 * 0.9 },
};
const READY = "!document.getElementById('app-view').hidden && document.querySelector('#statuses button').textContent !== ''";

const url = process.argv[2];
if (!url) {
  console.error("usage: node --experimental-websocket measure-load.mjs URL-with-sign-in-fragment");
  process.exit(2);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function browser() {
  const port = 9400 + Math.floor(Math.random() * 400);
  const profile = mkdtempSync(join(tmpdir(), "pingji-measure-"));
  const chromium = spawn(
    "chromium",
    ["--headless", "--no-sandbox", "--disable-gpu", `--remote-debugging-port=${port}`, `--user-data-dir=${profile}`, "about:blank"],
    { stdio: "ignore" },
  );
  let targets = [];
  for (let attempt = 0; attempt < 100 && targets.length === 0; attempt += 1) {
    await sleep(100);
    targets = await fetch(`http://127.0.0.1:${port}/json/list`).then((answer) => answer.json()).catch(() => []);
  }
  const socket = new WebSocket(targets.find((target) => target.type === "page").webSocketDebuggerUrl);
  await new Promise((resolve) => (socket.onopen = resolve));
  let next = 0;
  const waiting = new Map();
  const listeners = [];
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id && waiting.has(message.id)) {
      waiting.get(message.id)(message.result);
      waiting.delete(message.id);
    } else if (message.method) {
      for (const listener of listeners) listener(message);
    }
  };
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      next += 1;
      waiting.set(next, resolve);
      socket.send(JSON.stringify({ id: next, method, params }));
    });
  const close = () => {
    socket.close();
    chromium.kill();
    setTimeout(() => rmSync(profile, { recursive: true, force: true }), 500);
  };
  return { send, listeners, close };
}

async function timeLoad(page, target) {
  let bytes = 0;
  const count = (message) => {
    if (message.method === "Network.loadingFinished") bytes += message.params.encodedDataLength;
  };
  page.listeners.push(count);
  const started = performance.now();
  await page.send("Page.navigate", { url: target });
  for (;;) {
    const answer = await page.send("Runtime.evaluate", { expression: `Boolean(${READY})`, returnByValue: true });
    if (answer?.result?.value === true) break;
    if (performance.now() - started > 120_000) throw new Error("not ready within 120 s");
    await sleep(20);
  }
  const elapsed = performance.now() - started;
  page.listeners.splice(page.listeners.indexOf(count), 1);
  return { ms: Math.round(elapsed), kb: Math.round(bytes / 102.4) / 10 };
}

for (const [name, conditions] of Object.entries(PROFILES)) {
  const page = await browser();
  await page.send("Network.enable");
  await page.send("Page.enable");
  await page.send("Emulation.setDeviceMetricsOverride", { width: 390, height: 844, deviceScaleFactor: 2, mobile: true });
  await page.send("Network.emulateNetworkConditions", { offline: false, ...conditions });
  const first = await timeLoad(page, url);
  // The service worker has the shell now: open the app again.
  await page.send("Runtime.evaluate", { expression: "navigator.serviceWorker.ready.then(() => true)", awaitPromise: true });
  await sleep(500);
  const origin = new URL(url).origin;
  const again = await timeLoad(page, `${origin}/field/`);
  console.log(`${name}: first visit ${first.ms} ms (${first.kb} KB over the network), next start ${again.ms} ms (${again.kb} KB)`);
  page.close();
}
