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
const answerVideos = []; // video_url of answers seen, for the replay test

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
  // The gateway renders the greeting at start; the page shows it (and may play
  // it) once it is there: the tests begin from the quiet page after that.
  await page.waitForSelector('#conversation li.greeting', { timeout: ANSWER_MS });
  await stopAnswer(page);
});

after(async () => {
  if (browser) await browser.close();
  if (system) await system.stop();
});

/* ---- helpers --------------------------------------------------------------------- */

// The avatar's answers; the greeting, when the gateway has one, is not one of them.
const assistantItems = (p) => p.locator('#conversation li.assistant:not(.greeting)');
const userItems = (p) => p.locator('#conversation li.user');

// Waits until the log holds `count` answers; returns the last one's text.
async function waitAnswers(p, count, timeout = ANSWER_MS) {
  await p.waitForFunction((n) => document.querySelectorAll('#conversation li.assistant:not(.greeting)').length >= n,
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

// Whether the pre-rendered idle loop is on screen and playing.
const idleLoopPlaying = (p) => p.waitForFunction(() => {
  const video = document.getElementById('idle-video');
  return !document.getElementById('idle').hidden && !video.hidden && !video.paused &&
    video.readyState >= 2 && new URL(video.currentSrc).pathname === '/idle.mp4';
}, null, { timeout: 10000 }).then(() => true, () => false);

// Stops the avatar if it is still speaking (the Stop button shows only then).
async function stopAnswer(p) {
  if (await p.isVisible('#stop-playback')) await p.click('#stop-playback');
}

const pageState = (p) => p.evaluate(() => document.body.dataset.state);

// How many questions and answers the log holds now.
const logCounts = async (p) => ({ users: await userItems(p).count(), answers: await assistantItems(p).count() });

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

// Notes every clip the answer videos start, play and finish in window.played,
// with the number of captions tracks showing, and the captions seen on screen
// per clip in window.captions. The clip an element plays is noted at 'play': by
// the time 'ended' is seen the page may already have loaded the next clip into
// that element. 'play' comes once per start ('playing' again after a stall).
const watchClips = (p) => p.evaluate(() => {
  window.played = [];
  window.captions = {};
  const showing = (video) => Array.from(video.textTracks).filter((t) => t.mode === 'showing');
  const videos = Array.from(document.querySelectorAll('video.answer'));
  videos.forEach((video) => {
    const note = (event) => window.played.push({ src: video.dataset.clip, at: performance.now(), event,
      tracks: videos.reduce((n, v) => n + showing(v).length, 0) });
    video.addEventListener('play', () => { video.dataset.clip = new URL(video.src).pathname; note('play'); });
    video.addEventListener('playing', () => note('playing'));
    video.addEventListener('ended', () => note('ended'));
    video.addEventListener('timeupdate', () => {
      const seen = (window.captions[video.dataset.clip] ||= []);
      showing(video).forEach((track) => Array.from(track.activeCues || [], (cue) => cue.text)
        .forEach((text) => { if (!seen.includes(text)) seen.push(text); }));
    });
  });
});

// Collects the job states the page polls, with the page-relative time it got each.
function watchPolls(p) {
  const seen = [];
  const onResponse = async (response) => {
    if (!/\/api\/jobs\//.test(response.url()) || response.status() !== 200) return;
    try {
      seen.push(await response.json());
    } catch (e) { /* the page went away */ }
  };
  p.on('response', onResponse);
  seen.stop = () => p.off('response', onResponse);
  return seen;
}

/* ---- tests ------------------------------------------------------------------------ */

test('a multi-sentence answer plays its segments in order as they render; Replay plays it whole', async () => {
  // First in the suite: no answer has been rendered yet, so none comes from the
  // gateway's answer cache (which would make the job whole at once).
  await watchClips(page);
  const polls = watchPolls(page);
  const asked = Date.now();
  await page.fill('#question', 'What are your office hours?');
  await page.evaluate(() => { window.askedAt = performance.now(); });
  await page.press('#question', 'Enter');
  await page.waitForFunction(() => document.body.dataset.state === 'processing');
  const done = () => polls.find((job) => job.state === 'done');
  while (!done() && Date.now() - asked < ANSWER_MS) await page.waitForTimeout(100);
  const job = done();
  assert.ok(job, 'the job is done');
  const segments = (job.segments || []).slice().sort((a, b) => a.index - b.index);
  assert.ok(job.segment_count >= 2 && segments.length === job.segment_count,
    `a multi-sentence answer (${job.segment_count} segments)`);
  const clips = segments.map((segment) => segment.video_url);
  await page.waitForFunction((last) => window.played.some((p) => p.event === 'ended' && p.src === last),
    clips[clips.length - 1], { timeout: ANSWER_MS });
  await page.waitForTimeout(500); // anything played after the last segment shows up now
  polls.stop();
  const played = await page.evaluate(() => window.played);
  const starts = played.filter((p) => p.event === 'play').map((p) => p.src);
  const streamed = polls.filter((j) => j.state === 'running' && (j.segments || []).some((s) => s.video_url));
  console.log(`# segments: ${clips.length}; polls while running with a segment video: ${streamed.length}; ` +
    `first segment rendered ${job.timings_ms.first_segment} ms, whole answer ${job.timings_ms.total} ms after submission`);
  console.log(`# segments played: ${JSON.stringify(played.map((p) => [p.event, clips.indexOf(p.src), Math.round(p.at)]))}`);
  assert.deepEqual(starts, clips, 'each segment once, in index order, and not the whole video after them');
  assert.ok(!starts.includes(job.video_url));
  // Each segment shows its own sentence as captions, and nothing else.
  assert.ok(played.filter((p) => p.event === 'playing').every((p) => p.tracks === 1), 'one captions track at a time');
  const captions = await page.evaluate(() => window.captions);
  segments.forEach((segment) => {
    const seen = captions[segment.video_url] || [];
    assert.ok(seen.length > 0, `captions shown for segment ${segment.index}`);
    seen.forEach((cue) => assert.ok(segment.text.includes(cue), `segment ${segment.index} shows "${cue}"`));
  });
  const gaps = []; // from one segment's end to the next one's first frame
  for (let i = 1; i < clips.length; i++) {
    const ended = played.find((p) => p.event === 'ended' && p.src === clips[i - 1]);
    const next = played.find((p) => p.event === 'playing' && p.src === clips[i]);
    gaps.push(Math.round(next.at - ended.at));
  }
  const askedAt = await page.evaluate(() => window.askedAt);
  const firstPlaying = played.find((p) => p.event === 'playing').at;
  console.log(`# segments: first segment playing ${Math.round(firstPlaying - askedAt)} ms after the question was sent, ` +
    `the last one ended ${Math.round(played[played.length - 1].at - askedAt)} ms after; gaps between segments ${gaps.join(', ')} ms`);
  assert.equal(await pageState(page), 'idle');
  // The answer over, the avatar is back in its idle loop.
  assert.ok(await idleLoopPlaying(page), 'the idle loop plays after the answer');
  assert.ok(await page.isHidden('#idle-drawing'));
  assert.match(await waitAnswers(page, 1), /9 AM to 6 PM/);
  assert.equal(await assistantItems(page).count(), 1, 'the answer is logged once');
  // The log's Replay plays the joined answer, once.
  await page.evaluate(() => { window.played = []; });
  await assistantItems(page).first().locator('.replay').click();
  await waitVideoPlaying(page, 10000);
  await stopAnswer(page);
  assert.deepEqual(await page.evaluate(() => window.played.filter((p) => p.event === 'play').map((p) => p.src)),
    [job.video_url]);
  answerVideos.push(job.video_url);
});


test('a spoken question (click to talk) is answered with a playing video and both log entries', async () => {
  await watchSteps(page);
  const { users, answers } = await logCounts(page);
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
  const userText = (await userItems(page).nth(users).locator('.words').textContent({ timeout: ANSWER_MS }));
  assert.equal(userText.trim(), 'what are your office hours');
  const reply = await waitAnswers(page, answers + 1);
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
  assert.equal(await page.evaluate(() => Array.from(document.querySelectorAll('video.answer'))
    .flatMap((v) => Array.from(v.textTracks)).filter((t) => t.mode === 'showing').length), 1,
  'one captions track on the screen');
  const job = await lastJob(page);
  console.log(`# spoken question: the answer ${job.cached ? 'came from the answer cache' : 'was rendered'}` +
    `${job.segments ? ` in ${job.segments.length} segments` : ''}`);
  await page.screenshot({ path: join(ARTIFACTS, 'desktop-answer.png') });
  await rememberAnswerVideo(page);
  assert.deepEqual(page.errors, []);
});

test('a typed follow-up uses the conversation so far', async () => {
  const { users, answers } = await logCounts(page);
  await page.fill('#question', 'and on saturday?');
  await page.press('#question', 'Enter');
  assert.match(await waitAnswers(page, answers + 1), /10 AM to 2 PM/);
  await waitVideoPlaying(page);
  assert.equal((await userItems(page).nth(users).locator('.words').textContent()).trim(), 'and on saturday?');
  await rememberAnswerVideo(page);
});

test('a typed question on a new topic is answered', async () => {
  const { answers } = await logCounts(page);
  await page.fill('#question', 'Do you offer a student discount?');
  await page.click('#send');
  assert.match(await waitAnswers(page, answers + 1), /10 percent/);
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
  const { users, answers } = await logCounts(page);
  await page.focus('body');
  await page.keyboard.down('Space');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.waitForTimeout(2000);
  await page.keyboard.up('Space');
  await page.waitForFunction(() => document.body.dataset.state !== 'listening', null, { timeout: 3000 });
  assert.match(await waitAnswers(page, answers + 1), /9 AM to 6 PM/);
  assert.equal((await userItems(page).nth(users).locator('.words').textContent()).trim(), 'what are your office hours');
});

test('hands-free mode stops on silence and sends by itself', async () => {
  await stopAnswer(page);
  const { answers } = await logCounts(page);
  const started = Date.now();
  await page.check('#hands-free');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  // Nobody clicks: the silence after the question ends the recording.
  await page.waitForFunction(() => document.body.dataset.state !== 'listening', null, { timeout: 8000 });
  console.log(`# hands-free: recording stopped by itself after ${Date.now() - started} ms (speech ends at ~1.4 s)`);
  assert.match(await waitAnswers(page, answers + 1), /9 AM to 6 PM/);
  await page.uncheck('#hands-free');
});

test('barge-in: typing stops the avatar at once and the new question goes out', async () => {
  await stopAnswer(page);
  const { answers } = await logCounts(page);
  await page.fill('#question', 'How do I return a product?');
  await page.press('#question', 'Enter');
  await waitAnswers(page, answers + 1);
  await waitVideoPlaying(page);
  const before = await page.evaluate(() => document.querySelector('video.front').currentTime);
  await page.type('#question', 'W');
  const after = await page.evaluate(() => ({
    paused: document.querySelector('video.front').paused,
    state: document.body.dataset.state,
  }));
  assert.ok(after.paused, `the video paused on the first key (it was at ${before.toFixed(2)} s)`);
  assert.notEqual(after.state, 'speaking');
  // The sentences of that answer still arriving do not start it again.
  await page.waitForTimeout(2000);
  assert.ok(await page.evaluate(() => Array.from(document.querySelectorAll('video.answer')).every((v) => v.paused)),
    'still silent while the rest of the interrupted answer arrives');
  await page.type('#question', 'hat is your phone number?');
  await page.press('#question', 'Enter');
  assert.equal(await pageState(page), 'processing', 'the new question went out at once');
  assert.match(await waitAnswers(page, answers + 2), /\d{3}/);
  await waitVideoPlaying(page);
});

test('barge-in: starting to talk stops the avatar and the spoken question goes out', async () => {
  const { answers } = await logCounts(page);
  await assistantItems(page).last().locator('.replay').click();
  await waitVideoPlaying(page, 10000);
  await page.evaluate(() => document.activeElement.blur());
  assert.equal(await pageState(page), 'speaking');
  await page.keyboard.down('Space');
  const now = await page.evaluate(() => ({
    paused: Array.from(document.querySelectorAll('video.answer')).every((v) => v.paused),
    state: document.body.dataset.state,
  }));
  assert.ok(now.paused, 'no video plays once talking starts');
  await page.waitForFunction(() => document.body.dataset.state === 'listening');
  await page.waitForTimeout(2000);
  await page.keyboard.up('Space');
  assert.match(await waitAnswers(page, answers + 1), /9 AM to 6 PM/);
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
    const users = await userItems(page).count();
    const answers = await assistantItems(page).count();
    // The fillers' answers still pass through the later stages' short queues,
    // and the broker refuses new work while any queue is full: a person may
    // meet "busy" again and retries, each time after the Retry-After asked.
    const outcomes = [];
    for (let attempt = 0; attempt < 5 && outcomes[outcomes.length - 1] !== 'answered'; attempt++) {
      await page.waitForSelector('#retry:not([disabled])', { timeout: 10000 });
      assert.equal((await page.textContent('#retry')).trim(), 'Retry');
      await page.click('#retry');
      const outcome = await page.waitForFunction((n) => {
        if (document.querySelectorAll('#conversation li.assistant:not(.greeting)').length >= n) return 'answered';
        const box = document.getElementById('error-box');
        return !box.hidden && box.dataset.code;
      }, answers + 1, { timeout: ANSWER_MS });
      outcomes.push(await outcome.jsonValue());
    }
    console.log(`# busy: outcomes of Retry: ${outcomes.join(', ')}`);
    assert.equal(outcomes[outcomes.length - 1], 'answered');
    assert.ok(outcomes.slice(0, -1).every((code) => code === 'overloaded'), 'only busy before the answer');
    assert.match(await waitAnswers(page, answers + 1), /9 AM to 6 PM/);
    assert.equal(await userItems(page).count(), users + 1, 'the resent recording was transcribed');
    assert.ok(await page.isHidden('#error-box'));
  } finally {
    if (frozen) system.signal('stt', 'SIGCONT');
  }
});

test('a recording stopped before any speech says so in plain words', async () => {
  await stopAnswer(page);
  // The question starts after 0.3 s of silence: stop before it. Depending on
  // how much the recorder captured, the page, the gateway or stt refuses it.
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

test('a recording of a quiet room goes through the pipeline, fails with no_speech, and says so with Retry', async () => {
  // The microphone hears faint noise only: a real upload the gateway accepts,
  // in which stt hears nothing, so the job itself fails.
  const quiet = system.noise('quiet-room', 6, 0.002);
  const hearing = await launch(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${quiet}%noloop`]);
  try {
    const p = await newPage(await hearing.newContext());
    const polls = watchPolls(p);
    const uploaded = p.waitForResponse((r) => r.url().includes('/api/complete-flow'), { timeout: 10000 });
    await p.click('#record');
    await p.waitForFunction(() => document.body.dataset.state === 'listening');
    await p.waitForTimeout(2000);
    await p.click('#record');
    assert.equal((await uploaded).status(), 202, 'the gateway accepted the recording');
    await p.waitForSelector('#error-box:not([hidden])', { timeout: ANSWER_MS });
    polls.stop();
    const failed = polls.find((job) => job.state === 'failed');
    assert.ok(failed, 'the page saw the job fail');
    assert.equal(failed.error.code, 'no_speech');
    assert.equal(await p.getAttribute('#error-box', 'data-code'), 'no_speech');
    const words = await p.textContent('#error-message');
    console.log(`# quiet room: job ${failed.stage} ${failed.state} ${failed.error.code}; the page says: ${words}`);
    assert.match(words, /couldn't hear any speech/);
    assert.equal(await pageState(p), 'error');
    assert.equal(await userItems(p).count(), 0, 'nothing heard, nothing logged');
    // Resending the same silence would not help: Retry records anew.
    assert.equal((await p.textContent('#retry')).trim(), 'Try again');
    await p.click('#retry');
    await p.waitForFunction(() => document.body.dataset.state === 'listening');
    assert.ok(await p.isHidden('#error-box'));
    assert.deepEqual(p.errors, []);
  } finally {
    await hearing.close();
  }
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

test('"new conversation" forgets the session on the server and clears the log', async () => {
  const id = await page.evaluate(() => localStorage.getItem('avatar.session_id'));
  assert.equal((await fetch(`${system.base}/api/sessions/${id}`)).status, 200);
  await page.click('#new-conversation');
  await page.waitForFunction(() => !localStorage.getItem('avatar.session_id'));
  assert.equal(await page.locator('#conversation li:not(.greeting)').count(), 0, 'only a greeting is left');
  // The next person is greeted at once (the click allows sound), if there is a greeting.
  const greeting = await fetch(`${system.base}/api/greeting`);
  if (greeting.status === 200) {
    const { video_url: videoUrl } = await greeting.json();
    await page.waitForSelector('#conversation li.greeting', { timeout: 10000 });
    await waitVideoPlaying(page, 10000);
    assert.equal(await page.evaluate(() => new URL(document.querySelector('video.front').src).pathname), videoUrl);
    await stopAnswer(page);
  } else {
    assert.ok(await page.isVisible('#idle'));
  }
  let status = 0;
  for (let i = 0; i < 20 && status !== 404; i++) {
    status = (await fetch(`${system.base}/api/sessions/${id}`)).status;
    if (status !== 404) await page.waitForTimeout(100);
  }
  assert.equal(status, 404);
  assert.deepEqual(page.errors, []);
});

test('the greeting is the first message and plays at the first gesture that is not a question', async () => {
  // The desktop rule, stated so the test does not depend on the build's default:
  // no sound before the person has interacted with the page.
  const strict = await launch(['--autoplay-policy=document-user-activation-required']);
  const videoSrc = (p) => p.evaluate(() => new URL(document.querySelector('video.front').src).pathname);
  const nothingPlays = (p) => p.evaluate(() => Array.from(document.querySelectorAll('video.answer')).every((v) => v.paused));
  try {
    const ctx = await strict.newContext();
    const statuses = [];
    ctx.on('response', (r) => { if (r.url().endsWith('/api/greeting')) statuses.push(r.status()); });
    const started = Date.now();
    const p = await newPage(ctx);
    await p.waitForSelector('#conversation li.greeting', { timeout: ANSWER_MS });
    console.log(`# greeting: in the log ${Date.now() - started} ms after the page opened (GET /api/greeting: ${statuses.join(', ')})`);
    const greeting = await (await fetch(`${system.base}/api/greeting`)).json();
    assert.equal(greeting.state, 'done');
    assert.equal((await p.textContent('#conversation li.greeting .words')).trim(), greeting.text);
    assert.equal(await p.locator('#conversation li').count(), 1, 'the greeting is the first message');
    // Sound is refused before a gesture: the idle avatar stays and the button offers the greeting.
    await p.waitForSelector('#play-greeting:not([hidden])', { timeout: 5000 });
    assert.ok(await nothingPlays(p));
    assert.ok(await p.isVisible('#idle'));
    assert.equal(await pageState(p), 'idle');
    await p.click('#play-greeting');
    await waitVideoPlaying(p, 10000);
    assert.equal(await videoSrc(p), greeting.video_url);
    assert.ok(await p.isHidden('#play-greeting'));
    const cues = await p.waitForFunction(() => {
      const track = document.querySelector('video.front').textTracks[0];
      return track && track.cues && track.cues.length ? Array.from(track.cues, (c) => c.text).join(' ') : false;
    }, null, { timeout: 5000 });
    assert.equal(await cues.jsonValue(), greeting.text, 'captions carry the greeting');
    // Replayable like an answer.
    await stopAnswer(p);
    await p.click('#conversation li.greeting .replay');
    await waitVideoPlaying(p, 10000);
    assert.equal(await videoSrc(p), greeting.video_url);
    assert.deepEqual(p.errors, []);

    // Any other gesture on the page plays it too: a click on the avatar.
    const q = await newPage(await strict.newContext());
    await q.waitForSelector('#play-greeting:not([hidden])', { timeout: 10000 });
    await q.click('.stage', { position: { x: 10, y: 10 } });
    await waitVideoPlaying(q, 10000);
    assert.equal(await videoSrc(q), greeting.video_url);

    // A first gesture that asks a question is not interrupted by the greeting.
    const r = await newPage(await strict.newContext());
    await r.waitForSelector('#play-greeting:not([hidden])', { timeout: 10000 });
    await r.fill('#question', 'Is there parking?');
    await r.press('#question', 'Enter');
    assert.ok(await r.isHidden('#play-greeting'));
    assert.match(await waitAnswers(r, 1), /parking/);
    await waitVideoPlaying(r);
    assert.notEqual(await videoSrc(r), greeting.video_url);
    const roles = await r.evaluate(() => Array.from(document.querySelectorAll('#conversation li'), (li) => li.className));
    assert.deepEqual(roles, ['assistant greeting', 'user', 'assistant']);
    assert.deepEqual([...q.errors, ...r.errors], []);
  } finally {
    await strict.close();
  }
});

test('the idle avatar is the character\'s pre-rendered loop; a drawn face stands in when it cannot play', async () => {
  const ctx = await browser.newContext();
  try {
    const p = await newPage(ctx);
    assert.ok(await idleLoopPlaying(p), 'the idle loop plays as soon as the page opens');
    const first = await p.evaluate(() => document.getElementById('idle-video').currentTime);
    await p.waitForTimeout(600);
    const later = await p.evaluate(() => document.getElementById('idle-video').currentTime);
    assert.ok(later !== first, `the loop moves (${first} -> ${later} s)`);
    assert.ok(await p.isHidden('#idle-drawing'));
    assert.deepEqual(p.errors, []);

    // Without /idle.mp4 (a gateway with no idle video answers 404) the page draws a face.
    await ctx.route('**/idle.mp4', (route) => route.fulfill({ status: 404, body: 'not found' }));
    const q = await newPage(ctx);
    await q.waitForSelector('#idle-drawing:not([hidden])', { timeout: 10000 });
    assert.ok(await q.isHidden('#idle-video'));
    assert.ok(await q.isVisible('#idle'));
    assert.deepEqual(q.errors, []);
  } finally {
    await ctx.close();
  }
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
