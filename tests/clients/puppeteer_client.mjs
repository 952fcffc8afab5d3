// A Puppeteer client in its own process: attach with connect({browserWSEndpoint}), list the pages,
// evaluate in the first one, detach, and print one JSON line with what it saw.
//     node tests/clients/puppeteer_client.mjs ws://127.0.0.1:<port>/cdp
// puppeteer-core, never puppeteer: the full package downloads a browser on install.
import puppeteer from "puppeteer-core";

const endpoint = process.argv[2];
const started = performance.now();
const browser = await puppeteer.connect({ browserWSEndpoint: endpoint, defaultViewport: null });
const attachMs = performance.now() - started;
const pages = await browser.pages();
const urls = pages.map((page) => page.url());
const value = await pages[0].evaluate(() => [document.title, 6 * 7]);
const version = await browser.version();
// Detach only: disconnect() leaves the browser running, close() would end it.
await browser.disconnect();
console.log(JSON.stringify({ urls, value, version, attach_ms: Math.round(attachMs * 10) / 10 }));
