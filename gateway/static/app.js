// The talking-avatar UI: records (hold-to-talk, click-to-talk or hands-free with
// voice-activity detection) or takes a typed question, submits it to the gateway
// (shared/docs/api.md), polls the job with backoff and plays the answer: sentence
// segments back to back as they arrive, or the whole video; greets a new
// conversation with the gateway's greeting. Plain browser JavaScript: no build
// step, no third-party code, nothing loaded from elsewhere.
'use strict';

const POLL_FIRST_MS = 250;
const POLL_MAX_MS = 1500;
const POLL_GIVE_UP_MS = 90000; // the gateway's job deadline is 60 s: past this, stop waiting
const POLL_NETWORK_TRIES = 4; // failed polls in a row before "network lost"
const HOLD_MS = 400; // a press longer than this is hold-to-talk; shorter is click-to-talk
const MAX_RECORDING_MS = 30000;
const VAD_TICK_MS = 50;
const VAD_SPEECH_MS = 200; // this much voice in a row starts an utterance
const VAD_SILENCE_MS = 1200; // this much quiet after speech ends it
const VAD_WAIT_MS = 15000; // hands-free gives up when nobody speaks this long
const SESSION_KEY = 'avatar.session_id';

// The stages as people call them: "listening" is the page recording.
const STEPS = ['listening', 'transcribing', 'thinking', 'speaking', 'animating'];
const STEP_OF_STAGE = { stt: 'transcribing', chat: 'thinking', tts: 'speaking', avatar: 'animating' };
const STEP_WORDS = {
  listening: 'Listening',
  transcribing: 'Transcribing your question',
  thinking: 'Thinking of an answer',
  speaking: 'Putting the answer into speech',
  animating: 'Animating the avatar',
};

const ERROR_WORDS = {
  permission_denied: 'The microphone is blocked for this page. Allow microphone access in the browser (the icon in the address bar), or type your question.',
  no_microphone: 'No microphone was found. Plug one in, or type your question.',
  microphone: "The microphone couldn't be started. Check that no other app is using it, or type your question.",
  no_speech: "I couldn't hear any speech in that recording. Try again a little closer to the microphone.",
  bad_audio: "That recording couldn't be read. Please try recording again.",
  timeout: 'That took too long to answer. Please try again.',
  overloaded: 'The service is busy right now.',
  unavailable: 'The service is not reachable right now.',
  rate_limited: 'Too many questions at once.',
  backend_error: 'Something went wrong while preparing the answer. Please try again.',
  worker_lost: 'Something went wrong while preparing the answer. Please try again.',
  payload_too_large: 'That was too long. Please ask a shorter question.',
  unsupported_media_type: "This browser's recording format isn't supported. Please type your question instead.",
  unprocessable: "That recording couldn't be used. Please try again.",
  bad_request: "That question couldn't be sent. Please rephrase it and try again.",
  network: 'The connection to the server was lost. Check your network and try again.',
  gave_up: 'No answer arrived in time. Please try again.',
  playback: "The answer video couldn't be played. Please try again.",
};
const BUSY_CODES = new Set(['overloaded', 'unavailable', 'rate_limited']);
const MIC_CODES = new Set(['permission_denied', 'no_microphone', 'microphone']);

const $ = (id) => document.getElementById(id);
const ui = {
  body: document.body,
  stage: document.querySelector('.stage'),
  idle: $('idle'),
  idleVideo: $('idle-video'),
  idleDrawing: $('idle-drawing'),
  videos: [$('video-a'), $('video-b')],
  stopPlayback: $('stop-playback'),
  playGreeting: $('play-greeting'),
  progress: $('progress'),
  statusWords: $('status-words'),
  statusTime: $('status-time'),
  errorBox: $('error-box'),
  errorMessage: $('error-message'),
  retry: $('retry'),
  record: $('record'),
  recordLabel: $('record-label'),
  recordHint: $('record-hint'),
  recordTimer: $('record-timer'),
  level: $('level'),
  handsFree: $('hands-free'),
  form: $('ask-form'),
  question: $('question'),
  conversation: $('conversation'),
  logEmpty: $('log-empty'),
  download: $('download'),
  newConversation: $('new-conversation'),
};

// The page is in one of: idle, listening, processing, speaking, error.
function setPageState(name) {
  ui.body.dataset.state = name;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* ---- session ------------------------------------------------------------------ */

function sessionId() {
  try { return localStorage.getItem(SESSION_KEY) || ''; } catch (e) { return ''; }
}

function rememberSession(id) {
  try { localStorage.setItem(SESSION_KEY, id); } catch (e) { /* private mode: the session lasts the page */ }
}

function forgetSession() {
  try { localStorage.removeItem(SESSION_KEY); } catch (e) { /* nothing stored */ }
}

/* ---- conversation log -------------------------------------------------------- */

// Every turn shown, in order, for the text download: {role, text}.
const transcript = [];

// Adds a turn; an assistant turn gets a Replay button that plays `answer`
// ({video_url, reply, segments} or {job_id} to look it up). Returns the item.
function addTurn(role, text, answer) {
  if (!text) return null;
  const item = document.createElement('li');
  item.className = role;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Avatar';
  const words = document.createElement('p');
  words.className = 'words';
  words.textContent = text;
  item.append(who, words);
  if (role === 'assistant' && answer) {
    const replay = document.createElement('button');
    replay.type = 'button';
    replay.className = 'replay';
    replay.textContent = 'Replay';
    replay.setAttribute('aria-label', `Replay the answer: ${text.slice(0, 80)}`);
    replay.addEventListener('click', () => replayAnswer(answer));
    item.append(replay);
  }
  ui.conversation.append(item);
  item.turn = { role, text };
  transcript.push(item.turn);
  ui.logEmpty.hidden = true;
  ui.download.disabled = false;
  item.scrollIntoView({ block: 'nearest' });
  return item;
}

// Replaces the words of a turn shown by addTurn(): a reply grows while it streams.
function updateTurn(item, text) {
  if (!text || item.turn.text === text) return;
  item.turn.text = text;
  item.querySelector('.words').textContent = text;
  item.querySelector('.replay')?.setAttribute('aria-label', `Replay the answer: ${text.slice(0, 80)}`);
}

function clearLog() {
  ui.conversation.replaceChildren();
  transcript.length = 0;
  ui.logEmpty.hidden = false;
  ui.download.disabled = true;
}

function downloadConversation() {
  const stamp = new Date();
  const lines = [`Conversation with the talking avatar, ${stamp.toLocaleString()}`, ''];
  transcript.forEach((turn) => lines.push(`${turn.role === 'user' ? 'You' : 'Avatar'}: ${turn.text}`, ''));
  const url = URL.createObjectURL(new Blob([lines.join('\n')], { type: 'text/plain;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = `conversation-${stamp.toISOString().slice(0, 19).replace(/[:T]/g, '-')}.txt`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/* ---- progress and errors ------------------------------------------------------- */

const progress = { timer: null, started: 0, step: '', waiting: false, skipped: new Set() };

// Shows the current step highlighted, the ones before it done, and the time
// since `started`. The words go to a live region only when the step changes.
function showStep(step, waiting) {
  if (step === progress.step && waiting === progress.waiting) return;
  progress.step = step;
  progress.waiting = waiting;
  const at = STEPS.indexOf(step);
  ui.progress.querySelectorAll('[data-step]').forEach((item) => {
    const index = STEPS.indexOf(item.dataset.step);
    item.classList.toggle('done', index < at && !progress.skipped.has(item.dataset.step));
    item.classList.toggle('skipped', progress.skipped.has(item.dataset.step));
    item.classList.toggle('current', index === at);
    if (index === at) item.setAttribute('aria-current', 'step');
    else item.removeAttribute('aria-current');
  });
  ui.statusWords.textContent = waiting ? `Waiting in line to start: ${STEP_WORDS[step].toLowerCase()}` : `${STEP_WORDS[step]}…`;
}

function startProgress(step, skipped) {
  stopProgress();
  progress.started = performance.now();
  progress.skipped = new Set(skipped);
  progress.step = '';
  ui.progress.hidden = false;
  showStep(step, false);
  const tick = () => {
    ui.statusTime.textContent = `${((performance.now() - progress.started) / 1000).toFixed(1)} s`;
  };
  tick();
  progress.timer = setInterval(tick, 100);
}

function stopProgress() {
  if (progress.timer) clearInterval(progress.timer);
  progress.timer = null;
  ui.progress.hidden = true;
  ui.statusTime.textContent = '';
}

// What the Retry button does for the error shown: a function, or null.
let retryAction = null;
let retryCountdown = null;

// Shows `code` in plain words. `retryAfterS` (busy answers) keeps Retry disabled
// for that many seconds, counting down, as the server asked.
function showError(code, message, retry, retryAfterS) {
  const words = ERROR_WORDS[code] || message || ERROR_WORDS.backend_error;
  const busy = BUSY_CODES.has(code);
  ui.errorMessage.textContent = busy ? `${words} Please try again in a moment.` : words;
  ui.errorBox.hidden = false;
  ui.errorBox.dataset.code = code || 'backend_error';
  retryAction = retry || null;
  ui.retry.hidden = !retryAction;
  ui.retry.textContent = code === 'no_speech' || MIC_CODES.has(code) ? 'Try again' : 'Retry';
  clearInterval(retryCountdown);
  let left = busy ? Math.ceil(retryAfterS || 0) : 0;
  const render = () => {
    ui.retry.disabled = left > 0;
    ui.retry.textContent = left > 0 ? `Retry in ${left} s` : ui.retry.textContent.replace(/ in \d+ s$/, '');
  };
  render();
  if (left > 0) {
    retryCountdown = setInterval(() => {
      left -= 1;
      render();
      if (left <= 0) clearInterval(retryCountdown);
    }, 1000);
  }
  setPageState('error');
}

function clearError() {
  clearInterval(retryCountdown);
  ui.errorBox.hidden = true;
  retryAction = null;
}

/* ---- captions ------------------------------------------------------------------ */

// Splits a reply into sentences for caption cues.
function sentences(text) {
  const parts = text.match(/[^.!?]+[.!?]*\s*/g) || [text];
  return parts.map((part) => part.trim()).filter(Boolean);
}

// WebVTT cues for `text` spoken over `duration` seconds: one per sentence, each
// lasting in proportion to its length (speech time follows characters closely).
function captionCues(text, duration) {
  const parts = sentences(text);
  const total = parts.reduce((sum, part) => sum + part.length, 0) || 1;
  let at = 0;
  return parts.map((part, i) => {
    const end = i === parts.length - 1 ? duration : at + (duration * part.length) / total;
    const cue = new VTTCue(at, end, part);
    at = end;
    return cue;
  });
}

// One captions track per video element for the page's life, its cues replaced
// for each clip. (Removing a <track> element and adding a new one per clip left
// the old track's last cue drawn over the new captions in Chromium.)
const captionTracks = new Map();

// The captions of each video element still waiting for its clip's duration.
// Only the newest may be added: an older one, left over when the element got
// another clip before this one loaded, would add stale words to the new ones.
const pendingCaptions = new Map();

function captionsTrack(video) {
  let track = captionTracks.get(video);
  if (!track) {
    track = video.addTextTrack('captions', 'English', 'en');
    track.mode = 'hidden'; // until its video is the one shown
    captionTracks.set(video, track);
  }
  return track;
}

// Captions `text` on `video` (none when empty), timed once its clip's duration
// is known, in place of those of the clip it played before.
function setCaptions(video, text) {
  const pending = pendingCaptions.get(video);
  if (pending) video.removeEventListener('loadedmetadata', pending);
  pendingCaptions.delete(video);
  const track = captionsTrack(video);
  Array.from(track.cues || []).forEach((cue) => track.removeCue(cue));
  if (!text) return;
  const addCues = () => {
    pendingCaptions.delete(video);
    const duration = Number.isFinite(video.duration) ? video.duration : 1;
    captionCues(text, duration).forEach((cue) => track.addCue(cue));
  };
  if (video.readyState >= 1) {
    addCues();
  } else {
    pendingCaptions.set(video, addCues);
    video.addEventListener('loadedmetadata', addCues, { once: true });
  }
}

/* ---- the avatar: idle loop, answer playback ------------------------------------ */

// While nobody is answered the avatar breathes and blinks: the character's own loop
// (/idle.mp4, rendered once at build time in the pose every answer starts and ends
// in, so the switch to and from an answer does not jump), or, when that cannot
// play, a face drawn on the canvas.
const idle = { frame: 0, drawing: false, videoFailed: false };

function drawIdle(time) {
  const canvas = ui.idleDrawing;
  const ctx = canvas.getContext('2d');
  const dark = window.matchMedia('(prefers-color-scheme: dark)').matches;
  const w = canvas.width;
  const h = canvas.height;
  const breathe = Math.sin(time / 1200) * 3;
  const blink = (time % 4200) < 140 ? 0.15 : 1;
  ctx.clearRect(0, 0, w, h);
  const sky = ctx.createLinearGradient(0, 0, 0, h);
  sky.addColorStop(0, dark ? '#26344a' : '#d9e8f2');
  sky.addColorStop(1, dark ? '#162031' : '#b3c9d9');
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, h);
  const cx = w / 2;
  const cy = h / 2 + 10 + breathe;
  ctx.fillStyle = '#2a8a93'; // shoulders
  ctx.beginPath();
  ctx.ellipse(cx, h + 40, 150, 120, 0, Math.PI, 0);
  ctx.fill();
  ctx.fillStyle = '#f5d5bd'; // neck and face
  ctx.fillRect(cx - 22, cy + 60, 44, 60);
  ctx.beginPath();
  ctx.ellipse(cx, cy, 82, 100, 0, 0, Math.PI * 2);
  ctx.fill();
  ctx.fillStyle = '#8a3f1d'; // hair
  ctx.beginPath();
  ctx.ellipse(cx, cy - 55, 92, 58, 0, Math.PI, 0);
  ctx.fill();
  ctx.fillStyle = '#2c6e55'; // eyes
  [-30, 30].forEach((dx) => {
    ctx.beginPath();
    ctx.ellipse(cx + dx, cy - 5, 9, 9 * blink, 0, 0, Math.PI * 2);
    ctx.fill();
  });
  ctx.strokeStyle = '#c0555f'; // resting smile
  ctx.lineWidth = 4;
  ctx.lineCap = 'round';
  ctx.beginPath();
  ctx.arc(cx, cy + 30, 24, 0.2 * Math.PI, 0.8 * Math.PI);
  ctx.stroke();
}

function idleLoop(time) {
  if (!idle.drawing) return;
  drawIdle(time);
  idle.frame = requestAnimationFrame(idleLoop);
}

function drawIdleFace(on) {
  ui.idleDrawing.hidden = !on;
  if (on && !idle.drawing) {
    idle.drawing = true;
    idle.frame = requestAnimationFrame(idleLoop);
  } else if (!on && idle.drawing) {
    idle.drawing = false;
    cancelAnimationFrame(idle.frame);
  }
}

function idleVideoFailed() {
  idle.videoFailed = true;
  ui.idleVideo.hidden = true;
  if (!ui.idle.hidden) drawIdleFace(true);
}

// Shows the idle avatar (on) or hides it for an answer. The loop starts over
// each time it comes back, from the rest pose the answer ended in.
function showIdle(on) {
  const appearing = on && ui.idle.hidden;
  ui.idle.hidden = !on;
  const video = on && !idle.videoFailed;
  ui.idleVideo.hidden = !video;
  if (video && (appearing || ui.idleVideo.paused)) {
    if (appearing) ui.idleVideo.currentTime = 0;
    ui.idleVideo.play().catch((error) => { if (error.name !== 'AbortError') idleVideoFailed(); });
  } else if (!video) {
    ui.idleVideo.pause();
  }
  drawIdleFace(on && !video);
}
ui.idleVideo.addEventListener('error', idleVideoFailed);

// Plays an answer: a list of clips ({url, text}) back to back on two video
// elements, the next one loaded in the hidden element while the current plays,
// so the switch is a swap of visible elements, not a load. More clips can be
// appended while it plays (segments arriving); `finish()` says no more will come.
const player = {
  run: 0, // bumped by stop(): callbacks of an older run do nothing
  clips: [],
  next: 0, // index in clips of the clip to start next
  front: 0, // index in ui.videos of the visible element
  preloaded: -1, // index in clips loaded in the hidden element, or -1
  playing: false,
  finished: false, // no more clips will be appended
  onEnd: null,
  onBlocked: null, // called instead of showing controls when autoplay is refused
};

function videoFor(clip, video) {
  setCaptions(video, ''); // while the old clip is there: Chromium may keep drawing cues of a clip gone
  video.src = clip.url;
  video.load();
  setCaptions(video, clip.text);
}

// Makes ui.videos[index] the visible one, or none (-1: the idle avatar shows).
// Only its captions are drawn: Chromium draws a video's captions even while
// the video itself is hidden.
function showVideo(index) {
  if (index >= 0) player.front = index;
  ui.videos.forEach((video, i) => {
    video.classList.toggle('front', i === index);
    captionsTrack(video).mode = i === index ? 'showing' : 'hidden';
  });
  showIdle(index < 0);
}

// Starts clips[player.next] now: from the preloaded element when it is there.
function startNextClip() {
  const run = player.run;
  const index = player.next;
  const clip = player.clips[index];
  let video;
  if (player.preloaded === index) {
    video = ui.videos[1 - player.front];
  } else {
    video = ui.videos[player.playing ? 1 - player.front : player.front];
    videoFor(clip, video);
  }
  player.preloaded = -1;
  player.next += 1;
  player.playing = true;
  showVideo(ui.videos.indexOf(video));
  ui.videos.forEach((other) => { if (other !== video) other.pause(); });
  setPageState('speaking');
  ui.stopPlayback.hidden = false;
  video.currentTime = 0;
  video.play().catch((error) => {
    if (run !== player.run || (error && error.name === 'AbortError')) return;
    // Autoplay with sound may be refused until the person interacts: offer
    // controls, or let the caller wait for that interaction.
    if (error && error.name === 'NotAllowedError') {
      const onBlocked = player.onBlocked;
      if (onBlocked) {
        stopPlayback();
        onBlocked();
      } else {
        video.controls = true;
      }
      return;
    }
    stopPlayback();
    showError('playback', null, null);
  });
  preloadNextClip();
}

function preloadNextClip() {
  const index = player.next;
  if (index >= player.clips.length || player.preloaded === index) return;
  videoFor(player.clips[index], ui.videos[1 - player.front]);
  player.preloaded = index;
}

function onClipEnded(event) {
  if (event.target !== ui.videos[player.front] || !player.playing) return;
  if (player.next < player.clips.length) {
    startNextClip();
  } else if (player.finished) {
    endPlayback();
  } else {
    player.playing = false; // the next segment is still rendering: resume when it arrives
  }
}

ui.videos.forEach((video) => {
  video.addEventListener('ended', onClipEnded);
  // A clip that cannot load (gone, corrupt) ends the answer with words, not a stall.
  video.addEventListener('error', () => {
    if (video !== ui.videos[player.front] || !player.playing) return;
    stopPlayback();
    showError('playback', null, null);
  });
});

// Begins playing `clips`. Options: `more` (appendClips() will add clips until
// finishClips()), `onEnd` (called once the last clip has played), `onBlocked`
// (the browser refused to play with sound: called instead of showing controls).
// Returns the playback's run, for appendClips() and finishClips().
function playClips(clips, { more = false, onEnd = null, onBlocked = null } = {}) {
  stopPlayback();
  const run = player.run;
  player.clips = clips.slice();
  player.finished = !more;
  player.onEnd = onEnd;
  player.onBlocked = onBlocked;
  if (player.clips.length) startNextClip();
  return run;
}

// Adds clips to playback `run`; nothing once it was stopped (a barge-in drops
// the sentences of the answer still arriving, too).
function appendClips(run, clips) {
  if (run !== player.run) return;
  player.clips.push(...clips);
  if (!player.playing && player.next < player.clips.length) startNextClip();
  else preloadNextClip();
}

function finishClips(run) {
  if (run !== player.run) return;
  player.finished = true;
  if (!player.playing && player.next >= player.clips.length && player.clips.length) endPlayback();
}

function endPlayback() {
  const onEnd = player.onEnd;
  player.playing = false;
  player.onEnd = null;
  ui.stopPlayback.hidden = true;
  if (ui.body.dataset.state === 'speaking') setPageState('idle');
  showVideo(-1); // back to the idle loop, which starts in the pose the answer ended in
  if (onEnd) onEnd();
}

// Barge-in and "stop": silences the avatar and drops clips not yet played.
function stopPlayback() {
  player.run += 1;
  player.clips = [];
  player.next = 0;
  player.preloaded = -1;
  player.playing = false;
  player.finished = true;
  player.onEnd = null;
  player.onBlocked = null;
  ui.videos.forEach((video) => {
    video.pause();
    video.controls = false;
  });
  ui.stopPlayback.hidden = true;
  if (ui.body.dataset.state === 'speaking') setPageState('idle');
}

function isSpeaking() {
  return ui.body.dataset.state === 'speaking';
}

async function replayAnswer(answer) {
  cancelJob();
  clearError();
  let job = answer;
  if (!job.video_url && job.job_id) {
    try {
      const response = await fetch(`/api/jobs/${encodeURIComponent(job.job_id)}`, { cache: 'no-store' });
      if (!response.ok) throw new Error('gone');
      job = await response.json();
      Object.assign(answer, job);
    } catch (e) {
      showError('gave_up', 'That answer is no longer available.', null);
      return;
    }
  }
  if (job.video_url) playClips([{ url: job.video_url, text: job.reply }]);
  else playClips(readySegments(job.segments, 0));
}

// The clips of the segments ready to play from index `from` on: each segment
// with its video, in index order, up to the first one still rendering. Segments
// may be listed before their video exists, and (several avatar replicas) a
// later sentence may be ready before an earlier one.
function readySegments(segments, from) {
  const byIndex = new Map((segments || []).map((segment) => [segment.index, segment]));
  const clips = [];
  for (let index = from; byIndex.has(index) && byIndex.get(index).video_url; index++) {
    const segment = byIndex.get(index);
    clips.push({ url: segment.video_url, text: segment.text });
  }
  return clips;
}

/* ---- asking: submit, poll, answer ----------------------------------------------- */

// The question in flight; a newer question (barge-in) or "new conversation"
// cancels it, and its results are then ignored.
let currentJob = null;

function cancelJob() {
  if (currentJob) currentJob.cancelled = true;
  currentJob = null;
  stopProgress();
}

// A fetch that turns "offline" into {code: 'network'} and a non-2xx into the
// API's {code, message} plus the Retry-After seconds.
async function apiFetch(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw { code: 'network' };
  }
  if (response.ok) return response;
  let error = { code: 'backend_error' };
  try {
    error = (await response.json()).error || error;
  } catch (e) { /* not JSON: keep the generic words */ }
  const retryAfter = Number(response.headers.get('Retry-After'));
  throw { code: error.code, message: error.message, status: response.status,
    retryAfterS: Number.isFinite(retryAfter) ? retryAfter : 0 };
}

async function submit(request) {
  const id = sessionId();
  let response;
  if (request.kind === 'audio') {
    const query = id ? `?session_id=${encodeURIComponent(id)}` : '';
    response = await apiFetch(`/api/complete-flow${query}`, {
      method: 'POST',
      headers: { 'Content-Type': request.mime },
      body: request.blob,
    });
  } else {
    const body = { text: request.text };
    if (id) body.session_id = id;
    response = await apiFetch('/api/ask', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }
  const accepted = await response.json();
  rememberSession(accepted.session_id);
  return accepted;
}

// Polls every 250 ms at first, backing off to 1.5 s, for at most 90 s; a few
// failed polls in a row (the network gone) end it. `onUpdate` sees every state.
async function poll(ticket, statusUrl, onUpdate) {
  let delay = POLL_FIRST_MS;
  let failures = 0;
  const started = performance.now();
  while (performance.now() - started < POLL_GIVE_UP_MS) {
    await sleep(delay);
    if (ticket.cancelled) return null;
    delay = Math.min(POLL_MAX_MS, Math.round(delay * 1.4));
    let job;
    try {
      job = await (await apiFetch(statusUrl, { cache: 'no-store' })).json();
      failures = 0;
    } catch (error) {
      if (error.status === 404) throw { code: 'gave_up' };
      failures += 1;
      if (failures >= POLL_NETWORK_TRIES) throw { code: 'network' };
      continue;
    }
    if (ticket.cancelled) return null;
    onUpdate(job);
    if (job.state === 'done' || job.state === 'failed') return job;
  }
  throw { code: 'gave_up' };
}

// Sends `request` ({kind: 'audio', blob, mime} or {kind: 'text', text}) at once,
// superseding any question still in flight and any answer still playing.
async function ask(request) {
  cancelJob();
  stopPlayback();
  clearError();
  const ticket = { cancelled: false };
  currentJob = ticket;
  setPageState('processing');
  const typed = request.kind === 'text';
  startProgress(typed ? 'thinking' : 'transcribing', typed ? ['listening', 'transcribing'] : []);
  if (typed && !request.logged) {
    addTurn('user', request.text);
    request.logged = true; // a Retry does not log it twice
  }
  let transcriptShown = typed;
  let segmentsQueued = 0; // segments 0 .. segmentsQueued-1 are given to the player
  let playRun = -1; // the player's run playing them
  let answerItem = null;
  const answer = {};
  const retry = () => ask(request);
  // The answer goes into the log when the avatar starts saying it, and grows
  // with the reply: a streamed reply has only its first sentences at first.
  const logAnswer = (reply) => {
    if (answerItem) updateTurn(answerItem, reply);
    else answerItem = addTurn('assistant', reply, answer);
  };
  try {
    const accepted = await submit(request);
    if (ticket.cancelled) return;
    answer.job_id = accepted.job_id;
    const job = await poll(ticket, accepted.status_url, (update) => {
      showStep(STEP_OF_STAGE[update.stage] || 'thinking', update.state === 'queued');
      if (!transcriptShown && update.transcript) {
        addTurn('user', update.transcript);
        transcriptShown = true;
      }
      // Sentences already rendered play while later ones still render. An
      // answer first seen whole (fast, or from the answer cache) plays as the
      // one joined video instead, after the poll.
      const streaming = update.state === 'running' || (update.state === 'done' && segmentsQueued > 0);
      const clips = streaming ? readySegments(update.segments, segmentsQueued) : [];
      if (clips.length) {
        if (segmentsQueued === 0) playRun = playClips(clips, { more: true, onEnd: () => answerPlayed(request) });
        else appendClips(playRun, clips);
        segmentsQueued += clips.length;
      }
      if (segmentsQueued) logAnswer(update.reply);
    });
    if (!job) return; // superseded
    currentJob = null;
    stopProgress();
    if (job.state === 'failed') {
      stopPlayback();
      const error = job.error || {};
      const code = error.code || 'backend_error';
      // No speech: resending the same silence would not help; record anew.
      showError(code, error.message, code === 'no_speech' && request.kind === 'audio' ? talkAgain : retry);
      return;
    }
    // From here on a Replay plays the whole answer's video_url.
    Object.assign(answer, job);
    logAnswer(job.reply);
    if (segmentsQueued) {
      finishClips(playRun);
    } else if (job.video_url) {
      playClips([{ url: job.video_url, text: job.reply }], { onEnd: () => answerPlayed(request) });
    } else {
      setPageState('idle');
    }
  } catch (error) {
    if (ticket.cancelled) return;
    currentJob = null;
    stopProgress();
    stopPlayback();
    showError(error.code, error.message, retry, error.retryAfterS);
  }
}

// After an answer has played: hands-free listens again for the next question.
function answerPlayed(request) {
  if (ui.handsFree.checked && request.kind === 'audio') startListening({ handsFree: true });
}

/* ---- recording ------------------------------------------------------------------ */

// Opus in WebM where the browser has it (Chrome, Firefox), MP4 otherwise (Safari).
function recordingType() {
  const candidates = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];
  if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) return '';
  return candidates.find((type) => MediaRecorder.isTypeSupported(type)) || '';
}

// The recording in progress, or null: {stream, recorder, chunks, audio, analyser,
// started, handsFree, pendingStop, send, tick, heardMs, quietMs, spoke}.
let rec = null;
let starting = false; // getUserMedia is pending
let pendingStopRequest = null; // a release that arrived while the microphone was opening

function micErrorCode(error) {
  const name = error && error.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'permission_denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'no_microphone';
  return 'microphone';
}

// Opens the microphone and records. `handsFree`: stop by itself after speech
// followed by silence, and send. Starting to talk interrupts the avatar at once.
async function startListening({ handsFree }) {
  if (rec || starting) return;
  stopPlayback(); // barge-in: the avatar stops as soon as the person starts
  cancelJob();
  clearError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !recordingType()) {
    showError('microphone', null, null);
    return;
  }
  starting = true;
  pendingStopRequest = null;
  setRecordLook('starting');
  let stream;
  try {
    // The raw signal: the speech recognizer does better on it than on the
    // browser's noise suppression and gain control, and the avatar is always
    // silenced before recording starts, so there is no echo to cancel.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    starting = false;
    setRecordLook('off');
    const code = micErrorCode(error);
    showError(code, null, () => startListening({ handsFree }));
    return;
  }
  starting = false;
  const mimeType = recordingType();
  const recorder = new MediaRecorder(stream, { mimeType });
  const session = {
    stream, recorder, chunks: [], handsFree, started: performance.now(),
    pendingStop: pendingStopRequest, send: true, heardMs: 0, quietMs: 0, spoke: false,
    audio: null, analyser: null, samples: null, tick: null,
  };
  pendingStopRequest = null;
  rec = session;
  recorder.addEventListener('dataavailable', (event) => {
    if (event.data.size) session.chunks.push(event.data);
  });
  recorder.addEventListener('stop', () => finishRecording(session));
  startLevelMeter(session);
  recorder.start(250);
  setPageState('listening');
  startProgress('listening', []);
  setRecordLook('on');
  if (session.pendingStop) stopListening(session.pendingStop.send);
}

function stopListening(send) {
  if (!rec) {
    if (starting) pendingStopRequest = { send };
    return;
  }
  rec.send = send;
  if (rec.recorder.state !== 'inactive') rec.recorder.stop();
}

function finishRecording(session) {
  clearInterval(session.tick);
  session.stream.getTracks().forEach((track) => track.stop());
  if (session.audio) session.audio.close().catch(() => {});
  if (rec === session) rec = null;
  setRecordLook('off');
  ui.level.style.transform = 'scaleX(0)';
  stopProgress();
  if (ui.body.dataset.state === 'listening') setPageState('idle');
  if (!session.send) return;
  const mime = session.recorder.mimeType || recordingType();
  const blob = new Blob(session.chunks, { type: mime });
  if (!blob.size) {
    showError('no_speech', null, talkAgain); // stopped before anything was captured
    return;
  }
  ask({ kind: 'audio', blob, mime });
}

// The level meter, the timer and (hands-free) voice-activity detection, read
// from an AnalyserNode every 50 ms. Speech is a level well above the quietest
// level heard so far (the noise floor), which adapts to the room.
function startLevelMeter(session) {
  const AudioCtx = window.AudioContext || window.webkitAudioContext;
  let floorDb = -60;
  if (AudioCtx) {
    session.audio = new AudioCtx();
    const source = session.audio.createMediaStreamSource(session.stream);
    session.analyser = session.audio.createAnalyser();
    session.analyser.fftSize = 1024;
    session.samples = new Float32Array(session.analyser.fftSize);
    source.connect(session.analyser);
    session.audio.resume().catch(() => {});
  }
  session.tick = setInterval(() => {
    const elapsed = performance.now() - session.started;
    ui.recordTimer.textContent = formatSeconds(elapsed / 1000);
    if (elapsed >= MAX_RECORDING_MS) {
      stopListening(true);
      return;
    }
    if (!session.analyser) return;
    session.analyser.getFloatTimeDomainData(session.samples);
    let sum = 0;
    for (const sample of session.samples) sum += sample * sample;
    const db = 10 * Math.log10(sum / session.samples.length + 1e-12);
    ui.level.style.transform = `scaleX(${Math.min(1, Math.max(0, (db + 60) / 50)).toFixed(3)})`;
    floorDb = db < floorDb ? db : floorDb + 0.02; // falls at once, creeps up slowly
    if (session.handsFree) detectVoice(session, db, Math.max(floorDb, -70), elapsed);
  }, VAD_TICK_MS);
}

function detectVoice(session, db, floorDb, elapsed) {
  const voiced = db > Math.max(-50, floorDb + 15);
  if (voiced) {
    session.heardMs += VAD_TICK_MS;
    session.quietMs = 0;
    if (session.heardMs >= VAD_SPEECH_MS) session.spoke = true;
  } else {
    session.quietMs += VAD_TICK_MS;
    if (!session.spoke) session.heardMs = 0;
  }
  if (session.spoke && session.quietMs >= VAD_SILENCE_MS) {
    stopListening(true);
  } else if (!session.spoke && elapsed >= VAD_WAIT_MS) {
    stopListening(false);
    ui.handsFree.checked = false;
    showError('no_speech', null, () => { ui.handsFree.checked = true; startListening({ handsFree: true }); });
  }
}

function formatSeconds(seconds) {
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

function setRecordLook(look) {
  const on = look === 'on';
  ui.record.classList.toggle('recording', on);
  ui.record.setAttribute('aria-pressed', String(on));
  ui.recordLabel.textContent = look === 'starting' ? 'Starting…' : on ? (rec && rec.handsFree ? 'Listening' : 'Send') : 'Talk';
  ui.record.setAttribute('aria-label', on ? 'Stop recording and send the question' : 'Talk: hold, or press to start recording');
  if (!on) ui.recordTimer.textContent = '';
}

function talkAgain() {
  startListening({ handsFree: ui.handsFree.checked });
}

/* ---- input: pointer, keyboard, typed box ---------------------------------------- */

// One press of the talk button or the space bar. A long press records while
// held and sends on release; a short press starts (or stops and sends) a
// click-to-talk recording. In hands-free mode a press starts listening and the
// silence after speech sends.
let press = null;

function pressStart() {
  if (press) return;
  if (rec || starting) {
    press = { stopping: true };
    stopListening(true);
    return;
  }
  press = { at: performance.now() };
  startListening({ handsFree: ui.handsFree.checked });
}

function pressEnd() {
  if (!press) return;
  const held = performance.now() - (press.at || 0);
  const wasStart = !press.stopping;
  press = null;
  if (wasStart && held >= HOLD_MS && !ui.handsFree.checked) stopListening(true);
}

ui.record.addEventListener('pointerdown', (event) => {
  if (event.button !== 0) return;
  event.preventDefault(); // no text selection or focus flicker on a long press
  ui.record.setPointerCapture(event.pointerId);
  ui.record.focus();
  pressStart();
});
ui.record.addEventListener('pointerup', pressEnd);
ui.record.addEventListener('pointercancel', pressEnd);
// Enter on the focused button (a click without a pointer): toggle.
ui.record.addEventListener('click', (event) => {
  if (event.detail !== 0) return;
  pressStart();
  pressEnd();
});
ui.record.addEventListener('contextmenu', (event) => event.preventDefault());

// Space talks anywhere except where it types or activates another control.
function spaceTalks(event) {
  if (event.code !== 'Space' && event.key !== ' ') return false;
  const target = event.target;
  if (target === ui.record) return true;
  if (target.closest && target.closest('input, textarea, select, button, a, video, [contenteditable]')) return false;
  return true;
}

document.addEventListener('keydown', (event) => {
  if (!spaceTalks(event)) return;
  event.preventDefault();
  if (!event.repeat) pressStart();
});
document.addEventListener('keyup', (event) => {
  if (!spaceTalks(event)) return;
  event.preventDefault();
  pressEnd();
});

ui.handsFree.addEventListener('change', () => {
  if (ui.handsFree.checked) startListening({ handsFree: true });
  else if (rec && rec.handsFree) stopListening(false);
});

// Typing while the avatar speaks is a barge-in: it stops talking at once.
ui.question.addEventListener('input', () => {
  if (isSpeaking()) stopPlayback();
});

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.question.value.trim();
  if (!text) return;
  ui.question.value = '';
  if (rec) stopListening(false);
  ask({ kind: 'text', text });
});

ui.retry.addEventListener('click', () => {
  const action = retryAction;
  if (!action || ui.retry.disabled) return;
  clearError();
  setPageState('idle');
  action();
});

ui.stopPlayback.addEventListener('click', () => {
  stopPlayback();
  ui.record.focus();
});

ui.download.addEventListener('click', downloadConversation);

ui.newConversation.addEventListener('click', () => {
  const id = sessionId();
  cancelJob();
  stopPlayback();
  if (rec) stopListening(false);
  forgetSession();
  clearLog();
  clearError();
  ui.videos.forEach((video) => {
    setCaptions(video, '');
    video.removeAttribute('src');
    video.load();
  });
  showVideo(-1);
  setPageState('idle');
  if (id) fetch(`/api/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }).catch(() => {});
  ui.record.focus();
  greet(); // the next person is greeted, with sound: this click allows it
});

// Shows the conversation kept on the server, if this browser has one going.
async function restoreConversation() {
  const id = sessionId();
  if (!id) return;
  try {
    const response = await fetch(`/api/sessions/${encodeURIComponent(id)}`, { cache: 'no-store' });
    if (response.status === 404) {
      forgetSession();
      return;
    }
    if (!response.ok) return;
    const session = await response.json();
    session.turns.forEach((turn) => addTurn(turn.role, turn.text, turn.job_id ? { job_id: turn.job_id } : null));
  } catch (e) {
    // Offline at load: start with an empty log.
  }
}

/* ---- the greeting ------------------------------------------------------------------ */

// The avatar's first words (GET /api/greeting): its first message in an empty
// log, replayable like an answer, and played as soon as the browser allows
// sound: at once where autoplay is allowed (a kiosk set up for it), otherwise at
// the person's first click or key press, or with the "Hear the greeting" button.
// No greeting (404 from an older gateway, 503 with the pipeline down, a failed
// render, offline) leaves the page as it was: it is a courtesy, not a step.
const greeting = { ticket: null, waiting: null }; // waiting: the greeting held back, or null

// The greeting as {reply, video_url}, polling its job while it renders; null
// when there is none. Throws nothing.
async function fetchGreeting(ticket) {
  try {
    const response = await fetch('/api/greeting', { cache: 'no-store' });
    if (response.status !== 200 && response.status !== 202) return null;
    const body = await response.json();
    if (!body.text) return null;
    if (body.state === 'done') return body.video_url ? { reply: body.text, video_url: body.video_url } : null;
    if (!body.job_id) return null; // 202: queued or running, a job like any other
    const job = await poll(ticket, `/api/jobs/${encodeURIComponent(body.job_id)}`, () => {});
    return job && job.state === 'done' && job.video_url ? { reply: body.text, video_url: job.video_url } : null;
  } catch (e) {
    return null;
  }
}

// Nothing is being recorded, asked, played or shown as an error.
const pageQuiet = () => ui.body.dataset.state === 'idle' && !rec && !starting && !currentJob;

async function greet() {
  if (greeting.ticket) greeting.ticket.cancelled = true;
  stopWaitingToGreet();
  const ticket = { cancelled: false };
  greeting.ticket = ticket;
  const answer = await fetchGreeting(ticket);
  // A conversation begun meanwhile is not interrupted, nor preceded in the log.
  if (ticket.cancelled || !answer || transcript.length || !pageQuiet()) return;
  addTurn('assistant', answer.reply, answer).classList.add('greeting');
  playGreeting(answer);
}

function playGreeting(answer) {
  playClips([{ url: answer.video_url, text: answer.reply }], { onBlocked: () => waitToGreet(answer) });
}

// Sound was refused: the idle avatar stays, and the greeting waits for a gesture.
function waitToGreet(answer) {
  showVideo(-1);
  greeting.waiting = answer;
  ui.playGreeting.hidden = false;
}

function stopWaitingToGreet() {
  greeting.waiting = null;
  ui.playGreeting.hidden = true;
}

// The first gesture while the greeting waits: one that starts a question (the
// talk button, space to talk, the question box) or works another control means
// the person is busy, and the greeting stays in the log for Replay; any other
// (a tap on the avatar, a click on the page, a key) plays it.
function gestureWhileWaiting(event) {
  const answer = greeting.waiting;
  if (!answer) return;
  stopWaitingToGreet();
  const control = event.target.closest && event.target.closest('button, input, a, label, form');
  const onControl = control && control !== ui.playGreeting;
  if (onControl || (event.type === 'keydown' && spaceTalks(event)) || !pageQuiet()) return;
  playGreeting(answer);
}

// Capture phase: seen before the control's own handler acts on the same gesture
// (the "Hear the greeting" button has no handler of its own: this is it).
document.addEventListener('click', gestureWhileWaiting, true);
document.addEventListener('keydown', gestureWhileWaiting, true);

if (!recordingType() || !navigator.mediaDevices) {
  ui.record.disabled = true;
  ui.handsFree.disabled = true;
  ui.recordHint.textContent = 'Recording is not supported in this browser: type your question.';
}
showIdle(true);
restoreConversation().then(() => {
  if (!transcript.length) greet();
});
