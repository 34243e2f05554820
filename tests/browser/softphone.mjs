// Drive the phoneactors softphone in headless Chromium; used by tests/test_softphone.py.
//
//   node softphone.mjs PAGE_URL MICROPHONE_WAV [EXPECTED_REPLY] [TIMEOUT_MS]
//
// Chromium's fake microphone plays MICROPHONE_WAV (in a loop). The script presses Call, waits
// until the page's transcript has a bot line containing EXPECTED_REPLY (default "You said") and
// some of the bot's audio has played, hangs up, and prints one JSON object on stdout: the
// transcript, the page's counters, its final status, and its μ-law tables (for a bit-exactness
// check against Python). Anything going wrong prints the page's state on stderr and exits 1.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, wav, expected = "You said", timeoutText = "40000"] = process.argv.slice(2);
if (!url || !wav) {
  console.error("usage: node softphone.mjs PAGE_URL MICROPHONE_WAV [EXPECTED_REPLY] [TIMEOUT_MS]");
  process.exit(2);
}
const timeout = Number(timeoutText);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "phoneactors-chromium-"));

const browser = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${wav}`,
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const log = [];
let exitCode = 0;
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.on("console", (message) => log.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => log.push(`page error: ${error.message}`));
  const response = await page.goto(url);
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url} answered ${response && response.status()}`);
  }
  const codec = await page.evaluate(() => ({
    encode: Array.from({ length: 65536 }, (_, i) => window.softphone.codec.encode(i - 32768)),
    decode: Array.from({ length: 256 }, (_, i) => window.softphone.codec.decode(i)),
  }));
  await page.click("#call");
  try {
    await page.waitForFunction(
      (text) =>
        window.softphone.transcript().some((line) => line.speaker === "bot" && line.text.includes(text)) &&
        window.softphone.stats.playedSamples > 8000,
      expected,
      { timeout, polling: 100 },
    );
  } catch (error) {
    const state = await page.evaluate(() => ({
      status: document.getElementById("status").textContent,
      state: window.softphone.state,
      stats: window.softphone.stats,
      transcript: window.softphone.transcript(),
    }));
    throw new Error(`${error.message}\npage: ${JSON.stringify(state)}`);
  }
  await page.click("#hangup");
  await page.waitForFunction(() => window.softphone.state === "ended", null, { timeout: 5000 });
  const result = await page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    stats: window.softphone.stats,
    transcript: window.softphone.transcript(),
  }));
  process.stdout.write(JSON.stringify({ ...result, codec }) + "\n");
} catch (error) {
  console.error(error.message);
  exitCode = 1;
} finally {
  if (log.length) console.error(log.join("\n"));
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
