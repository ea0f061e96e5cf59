// Runs the console's browser tests in headless Chromium against the gateway
// at BASE_URL. Each test gets a fresh browser context (its own session
// storage), saves a screenshot of where it ended under SCREENSHOTS, and
// fails on any page error or console error other than the browser's own
// note of an HTTP refusal a test provoked. Writes figures.json (first-load
// transfer size and each page's render time) beside the screenshots.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { tests, figures } from './tests.mjs';

const SCREENSHOTS = process.env.SCREENSHOTS ?? '../../target/console-screenshots';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ONLY = process.env.ONLY;

// Chromium logs every 4xx/5xx fetch; the tests provoke some (a refused
// sign-in, a four-eyes refusal, an ended session) and check what the
// console says instead.
const HTTP_REFUSAL = /^Failed to load resource: the server responded with a status of 4\d\d/;

async function runOne(browser, test) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const errors = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !HTTP_REFUSAL.test(message.text())) {
      errors.push(`console error: ${message.text()}`);
    }
  });
  const started = Date.now();
  try {
    await test.run(page, context);
    if (errors.length) throw new Error(errors.join('\n'));
    return { ok: true, ms: Date.now() - started };
  } catch (error) {
    return { ok: false, ms: Date.now() - started, error };
  } finally {
    await page.screenshot({ path: join(SCREENSHOTS, `${test.slug}.png`), fullPage: true }).catch(() => {});
    await context.close();
  }
}

async function main() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  let failed = 0;
  const chosen = tests.filter((t) => !ONLY || t.slug.includes(ONLY));
  for (const test of chosen) {
    const result = await runOne(browser, test);
    if (result.ok) {
      console.log(`ok   ${test.name} (${result.ms} ms)`);
    } else {
      failed += 1;
      console.log(`FAIL ${test.name} (${result.ms} ms)\n     ${String(result.error?.stack ?? result.error).replaceAll('\n', '\n     ')}`);
    }
  }
  await browser.close();
  writeFileSync(join(SCREENSHOTS, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`${chosen.length - failed} passed, ${failed} failed; screenshots and figures.json in ${SCREENSHOTS}`);
  process.exitCode = failed ? 1 : 0;
}

await main();
