#!/usr/bin/env node
// How fast the console's first screen is, in Debian's Chromium against a
// running `gemba serve --demo` (docs/console.md, "Weight"). Not part of CI:
// timings depend on the machine.
//
// Usage:
//   node first-screen.mjs <http-graphql-url> <path-to-server-stdout-log> [runs]
//
// Each run is a fresh browser profile (nothing cached) and measures, with
// the page's own clock (performance.now(), so the driver's overhead is not
// counted):
//   - form: from the start of the navigation to `/` until the sign-in form
//     is in the page;
//   - overview: from submitting the form as the executive until the
//     overview of the organisation is complete (its heading shown and `main`
//     no longer busy: every panel drawn, the live subscriptions asked for).
// It prints each run, then the median and the slowest of each figure.

import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [graphqlUrl, logPath, runsArg, ...extra] = process.argv.slice(2);
const runs = Number(runsArg || 10);
if (!graphqlUrl || !logPath || extra.length || !(runs >= 1)) {
  console.error('usage: node first-screen.mjs <http-graphql-url> <path-to-server-stdout-log> [runs]');
  process.exit(2);
}
const base = graphqlUrl.replace(/\/graphql$/, '');
const line = readFileSync(logPath, 'utf8').split('\n').find((l) => l.includes('exec@gemba.local'));
if (!line) {
  console.error('no demo login line in the server log');
  process.exit(2);
}
const password = line.trim().split(/\s+/).pop();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const form = [];
const overview = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'en-GB' });
  const page = await context.newPage();
  await page.addInitScript(() => {
    const marks = {};
    window.firstScreen = marks;
    document.addEventListener('submit', () => { marks.submitted = performance.now(); }, true);
    new MutationObserver(() => {
      if (!marks.form && document.getElementById('email')) marks.form = performance.now();
      const h1 = document.querySelector('main h1');
      if (marks.submitted && !marks.overview && h1 && h1.textContent.endsWith('overview') && document.querySelector('main[aria-busy="false"]')) marks.overview = performance.now();
    }).observe(document, { subtree: true, childList: true, attributes: true });
  });
  await page.goto(`${base}/`);
  await page.getByLabel('Email').waitFor();
  await page.getByLabel('Email').fill('exec@gemba.local');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Acme Bank overview' }).waitFor();
  await page.locator('main[aria-busy="false"]').waitFor();
  const marks = await page.evaluate(() => window.firstScreen);
  form.push(marks.form);
  overview.push(marks.overview - marks.submitted);
  console.log(`run ${i + 1}: sign-in form ${Math.round(form[i])} ms after navigating, overview complete ${Math.round(overview[i])} ms after signing in`);
  await context.close();
}
await browser.close();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2);
};
const max = (xs) => Math.round(Math.max(...xs));
console.log(`sign-in form after navigating: median ${median(form)} ms, slowest ${max(form)} ms`);
console.log(`overview complete after signing in: median ${median(overview)} ms, slowest ${max(overview)} ms`);
