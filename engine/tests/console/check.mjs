// Loads the broker's web console in headless Chromium and prints, as one JSON line, what the page
// shows: broker list, topic queues with offsets, group lag per queue, a key lookup, the TPS panel.
// Usage: node check.mjs <console url> <screenshot.png> <lookup topic> <lookup key>
// Run by engine/tests/console.rs; the browser is Debian's /usr/bin/chromium (never downloaded).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, screenshot, topic, key] = process.argv.slice(2);
if (!url || !screenshot || !topic || !key) {
  console.error("usage: node check.mjs <url> <out.png> <topic> <key>");
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), "tern-console-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  timeout: 15000,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1400, height: 1000 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.setDefaultTimeout(10000);
  await page.goto(url);
  await page.waitForSelector('body[data-loaded="cluster groups topics"]');
  await page.waitForFunction(() => Number(document.getElementById("tps").dataset.samples) >= 2);

  await page.fill('#lookup input[name="topic"]', topic);
  await page.fill('#lookup input[name="key"]', key);
  await page.click('#lookup button');
  await page.waitForSelector('#messages[data-done="1"]', { state: "attached" });

  const shown = await page.evaluate(() => {
    const rows = (sel) => [...document.querySelectorAll(sel)];
    const field = (tr, f) => tr.querySelector(`[data-field="${f}"]`)?.textContent;
    return {
      broker: document.getElementById("broker").textContent,
      brokers: rows("#brokers tr").map((tr) => [...tr.cells].map((c) => c.textContent)),
      topics: rows("#topics tr").map((tr) => ({
        topic: tr.dataset.topic, queue: Number(tr.dataset.queue),
        min: Number(field(tr, "min")), max: Number(field(tr, "max")),
      })),
      groups: rows("#groups tr").map((tr) => ({
        group: tr.dataset.group, topic: tr.dataset.topic, queue: Number(tr.dataset.queue),
        brokerOffset: Number(field(tr, "broker")), consumerOffset: Number(field(tr, "consumer")),
        lag: Number(field(tr, "lag")),
      })),
      lookup: {
        note: document.getElementById("lookup-note").textContent,
        rows: rows("#messages tr").map((tr) => ({
          msgId: tr.dataset.msgid, keys: field(tr, "keys"), body: field(tr, "body"),
        })),
        // Markup smuggled in through keys or bodies would create elements; text creates none.
        injectedElements: document.querySelectorAll("#messages i, #messages img, #messages script").length,
      },
      tps: {
        samples: Number(document.getElementById("tps").dataset.samples),
        produced: Number(document.getElementById("tps").dataset.produced),
        produceText: document.getElementById("tps-produce").textContent,
      },
    };
  });
  shown.pageErrors = errors;
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(shown));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
