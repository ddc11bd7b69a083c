/** Dev tool: screenshot console pages with Debian's chromium. npx tsx scripts/dev/screenshot.ts <base-url> <token> <out-prefix> <hash>... */
import { chromium } from 'playwright-core';

const [base, token, prefix, ...hashes] = process.argv.slice(2);
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
const page = await browser.newPage({ viewport: { width: 1366, height: 860 } });
await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
for (const [i, hash] of hashes.entries()) {
  await page.goto(`${base}/#${hash}`);
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${prefix}-${i}.png`, fullPage: true });
}
await browser.close();
