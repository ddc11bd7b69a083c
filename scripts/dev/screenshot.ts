/** Dev tool: screenshot a console URL with Debian's chromium. npx tsx scripts/dev/screenshot.ts <url> <out.png> [device] */
import { chromium } from 'playwright-core';

const [url, out, clickDevice] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
await page.goto(url);
await page.waitForSelector('table, .chart', { timeout: 10_000 });
if (clickDevice) {
  await page.click('#devices a');
  await page.waitForSelector('.chart canvas', { timeout: 10_000 });
  await page.waitForTimeout(4000);
}
await page.screenshot({ path: out, fullPage: true });
await browser.close();
