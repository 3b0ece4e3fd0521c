// Browser tests of the web UI (gateway/static/) against the real system started
// from BUILD_DIR: Debian's Chromium driven by playwright-core, its fake capture
// device playing a spoken question made with espeak-ng as the microphone.
// Timings are printed, never asserted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { System } from './system.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, '..', 'artifacts');
const BUILD_DIR = process.env.BUILD_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ANSWER_MS = 60000;
const QUEUE_MAX = 1;

const BASE_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

let system;
let browser; // microphone = the spoken question, permission granted by the fake UI
let context;
let page;
const answerVideos = []; // video_url of answers seen, for the segments test

const launch = (args) => chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, ...args] });

async function newPage(ctx) {
  const p = await ctx.newPage();
  p.on('pageerror', (error) => { p.errors.push(error.message); });
  p.errors = [];
  if (process.env.UI_DEBUG) p.on('console', (message) => console.log(`# console: ${message.text()}`));
  await p.goto(`${system.base}/`);
  return p;
}

before(async () => {
  assert.ok(BUILD_DIR, 'BUILD_DIR must name the build directory');
  mkdirSync(ARTIFACTS, { recursive: true });
  system = new System(BUILD_DIR);
  // A short stage queue, so the busy test can fill it with a few jobs; no
  // per-client rate limit, as every question of the suite comes from 127.0.0.1.
  await system.start({ BROKER_QUEUE_MAX: String(QUEUE_MAX), GATEWAY_RATE_PER_MIN: '0' });
  const question = system.speech('question', 'What are your office hours?', 0.3, 2.5);
  browser = await launch(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${question}%noloop`]);
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  page = await newPage(context);
});

after(async () => {
  if (browser) await browser.close();
  if (system) await system.stop();
});

/* ---- helpers --------------------------------------------------------------------- */

const assistantItems = (p) => p.locator('#conversation li.assistant');
const userItems = (p) => p.locator('#conversation li.user');

// Waits until the log holds `count` answers; returns the last one's text.
async function waitAnswers(p, count, timeout = ANSWER_MS) {
  await p.waitForFunction((n) => document.querySelectorAll('#conversation li.assistant').length >= n,
    count, { timeout });
  return (await assistantItems(p).nth(count - 1).locator('.words').textContent()).trim();
}

// Waits until the visible answer video is playing with time advancing.
async function waitVideoPlaying(p, timeout = ANSWER_MS) {
  await p.waitForFunction(() => {
    const video = document.querySelector('video.front');
    return video && !video.paused && video.currentTime > 0.3;
  }, null, { timeout });
}

// Stops the avatar if it is still speaking (the Stop button shows only then).
async function stopAnswer(p) {
  if (await p.isVisible('#stop-playback')) await p.click('#stop-playback');
}

const pageState = (p) => p.evaluate(() => document.body.dataset.state);

// The latest job of the page's session, straight from the gateway.
async function lastJob(p) {
  const id = await p.evaluate(() => localStorage.getItem('avatar.session_id'));
  const session = await (await fetch(`${system.base}/api/sessions/${id}`)).json();
  const turn = session.turns.filter((t) => t.role === 'assistant').pop();
  return (await fetch(`${system.base}/api/jobs/${turn.job_id}`)).json();
}

async function rememberAnswerVideo(p) {
  const job = await lastJob(p);
  if (job.video_url) answerVideos.push(job.video_url);
}

// Records the step words the page announces, to see the stages go by.
const watchSteps = (p) => p.evaluate(() => {
  window.stepsSeen = [];
  new MutationObserver(() => {
    const words = document.getElementById('status-words').textContent;
    if (words && window.stepsSeen[window.stepsSeen.length - 1] !== words) window.stepsSeen.push(words);
  }).observe(document.getElementById('status-words'), { childList: true, characterData: true, subtree: true });
});

/* ---- tests ------------------------------------------------------------------------ */

test('a spoken question (click to talk) is answered with a playing video and both log entries', async () => {
  await watchSteps(page);
  const started = Date.now();
  await page.click('#record');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  // The level meter moves while the question plays into the microphone.
  await page.waitForFunction(() => {
    const m = /scaleX\(([\d.]+)\)/.exec(document.getElementById('level').style.transform);
    return m && Number(m[1]) > 0.3;
  }, null, { timeout: 5000 });
  await page.waitForTimeout(1800);
  assert.match(await page.textContent('#record-timer'), /^0:0[1-9]$/, 'the recording timer counts');
  await page.click('#record');
  const userText = (await userItems(page).first().locator('.words').textContent({ timeout: ANSWER_MS }));
  assert.equal(userText.trim(), 'what are your office hours');
  const reply = await waitAnswers(page, 1);
  assert.match(reply, /9 AM to 6 PM/);
  await waitVideoPlaying(page);
  console.log(`# spoken question: answer playing ${Date.now() - started} ms after the first click`);
  const steps = await page.evaluate(() => window.stepsSeen);
  console.log(`# steps announced: ${steps.join(' | ')}`);
  assert.ok(steps.some((s) => /^Listening/.test(s)), 'listening was shown');
  assert.ok(steps.some((s) => /Transcribing|Thinking|Putting|Animating/.test(s)), 'a pipeline stage was shown');
  // Captions: a WebVTT track built from the reply, with cues.
  const cues = await page.waitForFunction(() => {
    const video = document.querySelector('video.front');
    const track = video.textTracks[0];
    return track && track.cues && track.cues.length ? Array.from(track.cues, (c) => c.text).join(' ') : false;
  }, null, { timeout: 5000 });
  assert.match(await cues.jsonValue(), /9 AM to 6 PM/);
  await page.screenshot({ path: join(ARTIFACTS, 'desktop-answer.png') });
  await rememberAnswerVideo(page);
  assert.deepEqual(page.errors, []);
});

test('a typed follow-up uses the conversation so far', async () => {
  await page.fill('#question', 'and on saturday?');
  await page.press('#question', 'Enter');
  assert.match(await waitAnswers(page, 2), /10 AM to 2 PM/);
  await waitVideoPlaying(page);
  assert.equal((await userItems(page).nth(1).locator('.words').textContent()).trim(), 'and on saturday?');
  await rememberAnswerVideo(page);
});

test('a typed question on a new topic is answered', async () => {
  await page.fill('#question', 'Do you offer a student discount?');
  await page.click('#send');
  assert.match(await waitAnswers(page, 3), /10 percent/);
  await waitVideoPlaying(page);
  await rememberAnswerVideo(page);
});

test('an answer can be replayed from the log', async () => {
  await stopAnswer(page);
  assert.equal(await pageState(page), 'idle');
  await assistantItems(page).first().locator('.replay').click();
  await waitVideoPlaying(page, 10000);
  const src = await page.evaluate(() => new URL(document.querySelector('video.front').src).pathname);
  assert.equal(src, answerVideos[0]);
});

test('the conversation downloads as text', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const text = readFileSync(await download.path(), 'utf8');
  assert.match(text, /You: what are your office hours/);
  assert.match(text, /Avatar: .*9 AM to 6 PM/);
  assert.match(text, /You: and on saturday\?/);
  assert.match(download.suggestedFilename(), /^conversation-.*\.txt$/);
});

test('hold-to-talk with the space bar sends on release', async () => {
  await stopAnswer(page);
  await page.focus('body');
  await page.keyboard.down('Space');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.waitForTimeout(2000);
  await page.keyboard.up('Space');
  await page.waitForFunction(() => document.body.dataset.state !== 'listening', null, { timeout: 3000 });
  assert.match(await waitAnswers(page, 4), /9 AM to 6 PM/);
  assert.equal((await userItems(page).nth(3).locator('.words').textContent()).trim(), 'what are your office hours');
});

test('hands-free mode stops on silence and sends by itself', async () => {
  await stopAnswer(page);
  const started = Date.now();
  await page.check('#hands-free');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  // Nobody clicks: the silence after the question ends the recording.
  await page.waitForFunction(() => document.body.dataset.state !== 'listening', null, { timeout: 8000 });
  console.log(`# hands-free: recording stopped by itself after ${Date.now() - started} ms (speech ends at ~1.4 s)`);
  assert.match(await waitAnswers(page, 5), /9 AM to 6 PM/);
  await page.uncheck('#hands-free');
});

test('barge-in: typing stops the avatar at once and the new question goes out', async () => {
  await stopAnswer(page);
  await page.fill('#question', 'How do I return a product?');
  await page.press('#question', 'Enter');
  await waitAnswers(page, 6);
  await waitVideoPlaying(page);
  const before = await page.evaluate(() => document.querySelector('video.front').currentTime);
  await page.type('#question', 'W');
  const after = await page.evaluate(() => ({
    paused: document.querySelector('video.front').paused,
    state: document.body.dataset.state,
  }));
  assert.ok(after.paused, `the video paused on the first key (it was at ${before.toFixed(2)} s)`);
  assert.notEqual(after.state, 'speaking');
  await page.type('#question', 'hat is your phone number?');
  await page.press('#question', 'Enter');
  assert.equal(await pageState(page), 'processing', 'the new question went out at once');
  assert.match(await waitAnswers(page, 7), /\d{3}/);
  await waitVideoPlaying(page);
});

test('barge-in: starting to talk stops the avatar and the spoken question goes out', async () => {
  await assistantItems(page).last().locator('.replay').click();
  await waitVideoPlaying(page, 10000);
  await page.evaluate(() => document.activeElement.blur());
  assert.equal(await pageState(page), 'speaking');
  await page.keyboard.down('Space');
  const now = await page.evaluate(() => ({
    paused: Array.from(document.querySelectorAll('video')).every((v) => v.paused),
    state: document.body.dataset.state,
  }));
  assert.ok(now.paused, 'no video plays once talking starts');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.waitForTimeout(2000);
  await page.keyboard.up('Space');
  assert.match(await waitAnswers(page, 8), /9 AM to 6 PM/);
});

test('a busy gateway (503, stage queue full) is shown; Retry after Retry-After resends the recording', async () => {
  await stopAnswer(page);
  await page.click('#record');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.waitForTimeout(1800);
  // Fill the stt queue for real: a frozen stt holds one job, QUEUE_MAX more wait.
  // The freeze stays well under the broker's 3 s heartbeat expiry.
  const audio = readFileSync(system.speech('filler', 'Where is your store?', 0, 0));
  system.signal('stt', 'SIGSTOP');
  let frozen = true;
  try {
    for (let i = 0; i <= QUEUE_MAX; i++) {
      const accepted = await fetch(`${system.base}/api/complete-flow`, {
        method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: audio });
      assert.equal(accepted.status, 202);
    }
    await page.click('#record');
    await page.waitForSelector('#error-box:not([hidden])', { timeout: 10000 });
    system.signal('stt', 'SIGCONT');
    frozen = false;
    assert.equal(await page.getAttribute('#error-box', 'data-code'), 'overloaded');
    assert.match(await page.textContent('#error-message'), /busy/);
    assert.match(await page.textContent('#retry'), /Retry in \d s/);
    assert.ok(await page.isDisabled('#retry'), 'Retry waits for Retry-After');
    await page.waitForSelector('#retry:not([disabled])', { timeout: 10000 });
    assert.equal((await page.textContent('#retry')).trim(), 'Retry');
    const users = await userItems(page).count();
    const answers = await assistantItems(page).count();
    await page.click('#retry');
    assert.match(await waitAnswers(page, answers + 1), /9 AM to 6 PM/);
    assert.equal(await userItems(page).count(), users + 1, 'the resent recording was transcribed');
    assert.ok(await page.isHidden('#error-box'));
  } finally {
    if (frozen) system.signal('stt', 'SIGCONT');
  }
});

test('a recording with no speech says so in plain words', async () => {
  await stopAnswer(page);
  // The question starts after 0.3 s of silence: stop before it.
  await page.click('#record');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.click('#record');
  await page.waitForSelector('#error-box:not([hidden])', { timeout: ANSWER_MS });
  const code = await page.getAttribute('#error-box', 'data-code');
  const words = await page.textContent('#error-message');
  console.log(`# silent recording: ${code}: ${words}`);
  assert.ok(['no_speech', 'unprocessable', 'bad_audio'].includes(code), `code ${code}`);
  assert.ok(!(await page.isHidden('#retry')));
  assert.notEqual(await pageState(page), 'processing');
});

test('the network lost while waiting is shown; Retry succeeds once it is back', async () => {
  await stopAnswer(page);
  await page.fill('#question', 'Where is your store?');
  await page.press('#question', 'Enter');
  await context.setOffline(true);
  const offline = Date.now();
  try {
    await page.waitForSelector('#error-box[data-code="network"]', { timeout: 15000 });
    console.log(`# network lost: shown after ${Date.now() - offline} ms offline`);
  } finally {
    await context.setOffline(false);
  }
  const answers = await assistantItems(page).count();
  const started = Date.now();
  await page.click('#retry');
  await waitAnswers(page, answers + 1);
  await waitVideoPlaying(page);
  console.log(`# network back: retried answer playing after ${Date.now() - started} ms`);
});

test('segments play back to back, in order, as they arrive', async () => {
  // The pipeline does not produce segments yet: the job polls of one real
  // question are answered with the real job plus `segments` made of three
  // real answer videos from the gateway, arriving one per poll.
  assert.ok(answerVideos.length >= 3);
  const clips = answerVideos.slice(0, 3);
  let polls = 0;
  await page.route('**/api/jobs/*', async (route) => {
    const response = await route.fetch();
    const job = await response.json();
    polls += 1;
    const ready = Math.min(polls, clips.length);
    job.segments = clips.slice(0, ready).map((url, index) => ({ index, text: `Sentence ${index + 1}.`, video_url: url, duration_ms: 1000 }));
    if (ready < clips.length) {
      job.state = 'running';
      job.stage = 'avatar';
      delete job.video_url;
    }
    await route.fulfill({ response, json: job });
  });
  await stopAnswer(page);
  await page.evaluate(() => {
    window.played = [];
    document.querySelectorAll('video').forEach((video) => {
      // The clip an element plays is noted at 'play': by the time this listener
      // sees 'ended', the page may already have loaded the next clip into it.
      // 'play' comes once per start ('playing' again after a stall).
      const note = (event, src) => window.played.push({ src, at: performance.now(), event });
      video.addEventListener('play', () => { video.dataset.clip = new URL(video.src).pathname; note('play', video.dataset.clip); });
      video.addEventListener('playing', () => note('playing', video.dataset.clip));
      video.addEventListener('ended', () => note('ended', video.dataset.clip));
    });
  });
  await page.fill('#question', 'What is your phone number?');
  await page.press('#question', 'Enter');
  await page.waitForFunction((last) => window.played.some((p) => p.event === 'ended' && p.src === last),
    clips[clips.length - 1], { timeout: ANSWER_MS });
  await page.unroute('**/api/jobs/*');
  await page.waitForTimeout(300);
  const played = await page.evaluate(() => window.played);
  const starts = played.filter((p) => p.event === 'play').map((p) => p.src);
  console.log(`# segments played: ${JSON.stringify(played.map((p) => [p.event, clips.indexOf(p.src), Math.round(p.at)]))}`);
  assert.deepEqual(starts, clips, 'each segment once, in order, and not the whole video after them');
  const gaps = []; // from one clip's end to the next one's first frame
  for (let i = 1; i < clips.length; i++) {
    const ended = played.find((p) => p.event === 'ended' && p.src === clips[i - 1]);
    const next = played.find((p) => p.event === 'playing' && p.src === clips[i]);
    gaps.push(Math.round(next.at - ended.at));
  }
  console.log(`# segments: gap between segments ${gaps.join(', ')} ms (after ${polls} polls)`);
  assert.equal(await pageState(page), 'idle');
});

test('"new conversation" forgets the session on the server and clears the log', async () => {
  const id = await page.evaluate(() => localStorage.getItem('avatar.session_id'));
  assert.equal((await fetch(`${system.base}/api/sessions/${id}`)).status, 200);
  await page.click('#new-conversation');
  await page.waitForFunction(() => !localStorage.getItem('avatar.session_id'));
  assert.equal(await page.locator('#conversation li').count(), 0);
  assert.ok(await page.isVisible('#idle'));
  let status = 0;
  for (let i = 0; i < 20 && status !== 404; i++) {
    status = (await fetch(`${system.base}/api/sessions/${id}`)).status;
    if (status !== 404) await page.waitForTimeout(100);
  }
  assert.equal(status, 404);
  assert.deepEqual(page.errors, []);
});

test('on a phone in dark mode the page lays out in one column', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark',
    deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  try {
    const p = await newPage(phone);
    await p.fill('#question', 'What are your office hours?');
    await p.press('#question', 'Enter');
    assert.match(await waitAnswers(p, 1), /9 AM to 6 PM/);
    await waitVideoPlaying(p);
    const layout = await p.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      stage: document.querySelector('.stage').getBoundingClientRect().toJSON(),
      log: document.querySelector('.log').getBoundingClientRect().toJSON(),
      background: getComputedStyle(document.documentElement).backgroundColor,
    }));
    assert.ok(layout.scrollWidth <= 390, `no sideways scrolling (${layout.scrollWidth} px)`);
    assert.ok(layout.log.top >= layout.stage.bottom, 'the log is below the avatar');
    assert.equal(layout.background, 'rgb(15, 19, 26)', 'dark background');
    await p.screenshot({ path: join(ARTIFACTS, 'phone-dark-answer.png'), fullPage: true });
    assert.deepEqual(p.errors, []);
  } finally {
    await phone.close();
  }
});

test('microphone permission denied is explained, and typing still works', async () => {
  // Without the fake permission UI, headless Chromium denies the microphone.
  const denying = await launch(['--use-fake-device-for-media-stream']);
  try {
    const p = await newPage(await denying.newContext());
    await p.click('#record');
    await p.waitForSelector('#error-box[data-code="permission_denied"]', { timeout: 5000 });
    assert.match(await p.textContent('#error-message'), /blocked/);
    assert.equal(await pageState(p), 'error');
    assert.equal(await p.getAttribute('#record', 'aria-pressed'), 'false');
  } finally {
    await denying.close();
  }
});

test('no microphone at all is explained', async () => {
  const deviceless = await launch(['--use-fake-ui-for-media-stream']);
  try {
    const p = await newPage(await deviceless.newContext());
    await p.click('#record');
    await p.waitForSelector('#error-box[data-code="no_microphone"]', { timeout: 5000 });
    assert.match(await p.textContent('#error-message'), /No microphone/);
  } finally {
    await deviceless.close();
  }
});
