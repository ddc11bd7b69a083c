import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium: browser tests drive it through playwright-core and skip without it. */
export const CHROMIUM = '/usr/bin/chromium';

/** Headless Chromium as the browser tests run it: no sandbox (root in CI), no GPU, no network. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
