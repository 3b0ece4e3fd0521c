// The talking-avatar UI: records or takes a typed question, submits it to the
// gateway (shared/docs/api.md), polls the job and plays the answer video.
// Plain browser JavaScript: no build step, no third-party code.
'use strict';

const POLL_FIRST_MS = 300;
const POLL_MAX_MS = 1000;
const POLL_GIVE_UP_MS = 90000;
const SESSION_KEY = 'avatar.session_id';

const STAGE_WORDS = {
  stt: 'Listening to your question',
  chat: 'Thinking of an answer',
  tts: 'Finding the words',
  avatar: 'Getting ready to speak',
};

const ERROR_WORDS = {
  no_speech: "I couldn't hear any speech in that recording. Try again a little closer to the microphone.",
  bad_audio: "That recording couldn't be read. Please try recording again.",
  timeout: 'That took too long to answer. Please try again.',
  overloaded: 'The service is busy right now. Please try again in a moment.',
  unavailable: 'The service is not reachable right now. Please try again in a moment.',
  backend_error: 'Something went wrong while preparing the answer. Please try again.',
  payload_too_large: 'That was too long. Please ask a shorter question.',
  unsupported_media_type: "This browser's recording format isn't supported. Please type your question instead.",
  unprocessable: "That recording couldn't be used. Please try again.",
  rate_limited: 'Too many questions at once. Please wait a moment and try again.',
  network: 'The connection to the server was lost. Check your network and try again.',
  gave_up: 'No answer arrived in time. Please try again.',
  microphone: 'The microphone is not available. Allow microphone access or type your question.',
};

const $ = (id) => document.getElementById(id);
const ui = {
  record: $('record'),
  recordLabel: $('record-label'),
  form: $('ask-form'),
  question: $('question'),
  send: $('send'),
  status: $('status-line'),
  errorBox: $('error-box'),
  errorMessage: $('error-message'),
  retry: $('retry'),
  video: $('answer-video'),
  placeholder: $('video-placeholder'),
  conversation: $('conversation'),
  newConversation: $('new-conversation'),
};

const state = {
  recorder: null,
  chunks: [],
  busy: false,
  canRecord: true,
  lastRequest: null, // {kind: 'audio', blob, mime} or {kind: 'text', text}: what Retry resends
  timer: null,
};

function sessionId() {
  try { return localStorage.getItem(SESSION_KEY) || ''; } catch (e) { return ''; }
}

function rememberSession(id) {
  try { localStorage.setItem(SESSION_KEY, id); } catch (e) { /* private mode: session lasts the page */ }
}

function forgetSession() {
  try { localStorage.removeItem(SESSION_KEY); } catch (e) { /* nothing stored */ }
}

function addTurn(role, text) {
  if (!text) return;
  const item = document.createElement('li');
  item.className = role;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Avatar';
  item.append(who, document.createTextNode(text));
  ui.conversation.append(item);
  item.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

function showStatus(text) {
  ui.status.textContent = text;
  ui.status.hidden = !text;
}

function showError(code, fallback) {
  ui.errorMessage.textContent = ERROR_WORDS[code] || fallback || ERROR_WORDS.backend_error;
  ui.errorBox.hidden = false;
  ui.retry.hidden = !state.lastRequest;
}

function clearError() {
  ui.errorBox.hidden = true;
}

function setBusy(busy) {
  state.busy = busy;
  ui.send.disabled = busy;
  ui.record.disabled = !state.canRecord || (busy && !state.recorder);
  ui.retry.disabled = busy;
}

function stopTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

// Shows the stage in words with the seconds since the question was sent.
function startTimer(started, job) {
  stopTimer();
  const render = () => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const words = STAGE_WORDS[job.stage] || 'Waiting in line';
    showStatus(`${job.state === 'queued' ? 'Waiting in line' : words}… ${seconds} s`);
  };
  render();
  state.timer = setInterval(render, 100);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function readError(response) {
  try {
    const body = await response.json();
    return body.error || { code: 'backend_error' };
  } catch (e) {
    return { code: 'backend_error' };
  }
}

async function submit(request) {
  const id = sessionId();
  let response;
  if (request.kind === 'audio') {
    const query = id ? `?session_id=${encodeURIComponent(id)}` : '';
    response = await fetch(`/api/complete-flow${query}`, {
      method: 'POST',
      headers: { 'Content-Type': request.mime },
      body: request.blob,
    });
  } else {
    const body = { text: request.text };
    if (id) body.session_id = id;
    response = await fetch('/api/ask', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }
  if (response.status !== 202) throw await readError(response);
  const accepted = await response.json();
  rememberSession(accepted.session_id);
  return accepted;
}

// Polls every 300 ms at first, slowing to once a second, for at most 90 s.
// `onUpdate` sees every intermediate state (to show the transcript early).
async function poll(statusUrl, started, job, onUpdate) {
  let delay = POLL_FIRST_MS;
  while (Date.now() - started < POLL_GIVE_UP_MS) {
    await sleep(delay);
    delay = Math.min(POLL_MAX_MS, Math.round(delay * 1.5));
    const response = await fetch(statusUrl, { cache: 'no-store' });
    if (response.status === 404) throw { code: 'gave_up' };
    if (!response.ok) continue; // a passing hiccup: keep polling
    Object.assign(job, await response.json());
    onUpdate(job);
    if (job.state === 'done' || job.state === 'failed') return job;
  }
  throw { code: 'gave_up' };
}

function playAnswer(url) {
  if (!url) return;
  ui.placeholder.hidden = true;
  ui.video.src = url;
  ui.video.play().catch(() => {
    // Autoplay with sound may be refused: the controls stay for a tap.
  });
}

async function ask(request) {
  if (state.busy) return;
  state.lastRequest = request;
  clearError();
  setBusy(true);
  const started = Date.now();
  const job = { state: 'queued', stage: request.kind === 'audio' ? 'stt' : 'chat' };
  startTimer(started, job);
  if (request.kind === 'text') addTurn('user', request.text);
  try {
    const accepted = await submit(request);
    let transcriptShown = request.kind === 'text';
    const result = await poll(accepted.status_url, started, job, (update) => {
      if (!transcriptShown && update.transcript) {
        addTurn('user', update.transcript);
        transcriptShown = true;
      }
    });
    if (result.state === 'failed') {
      const error = result.error || {};
      throw { code: error.code, message: error.message };
    }
    addTurn('assistant', result.reply);
    playAnswer(result.video_url);
    showStatus('');
  } catch (error) {
    const code = error instanceof TypeError ? 'network' : error.code;
    showStatus('');
    showError(code, error.message);
  } finally {
    stopTimer();
    setBusy(false);
  }
}

// Opus in WebM where the browser has it (Chrome, Firefox), MP4 otherwise (Safari).
function recordingType() {
  const candidates = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'];
  if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) return '';
  return candidates.find((type) => MediaRecorder.isTypeSupported(type)) || '';
}

async function startRecording() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    showError('microphone');
    return;
  }
  const mimeType = recordingType();
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
  state.chunks = [];
  recorder.addEventListener('dataavailable', (event) => {
    if (event.data.size) state.chunks.push(event.data);
  });
  recorder.addEventListener('stop', () => {
    stream.getTracks().forEach((track) => track.stop());
    const mime = recorder.mimeType || mimeType || 'audio/webm';
    const blob = new Blob(state.chunks, { type: mime });
    state.recorder = null;
    setRecordingLook(false);
    if (blob.size) ask({ kind: 'audio', blob, mime });
  });
  state.recorder = recorder;
  recorder.start();
  clearError();
  setRecordingLook(true);
}

function setRecordingLook(recording) {
  ui.record.classList.toggle('recording', recording);
  ui.record.setAttribute('aria-pressed', String(recording));
  ui.recordLabel.textContent = recording ? 'Tap to stop' : 'Tap to speak';
  ui.record.disabled = !state.canRecord || (state.busy && !recording);
}

ui.record.addEventListener('click', () => {
  if (state.recorder) state.recorder.stop();
  else if (!state.busy) startRecording();
});

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.question.value.trim();
  if (!text) return;
  ui.question.value = '';
  ask({ kind: 'text', text });
});

ui.retry.addEventListener('click', () => {
  const request = state.lastRequest;
  if (!request) return;
  // A retried typed question is already in the log.
  if (request.kind === 'text') ui.conversation.lastElementChild?.remove();
  ask(request);
});

ui.newConversation.addEventListener('click', async () => {
  const id = sessionId();
  forgetSession();
  ui.conversation.replaceChildren();
  ui.video.removeAttribute('src');
  ui.video.load();
  ui.placeholder.hidden = false;
  clearError();
  state.lastRequest = null;
  if (id) fetch(`/api/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }).catch(() => {});
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
    session.turns.forEach((turn) => addTurn(turn.role, turn.text));
  } catch (e) {
    // Offline at load: start with an empty log.
  }
}

if (!recordingType() || !navigator.mediaDevices) {
  state.canRecord = false;
  ui.record.disabled = true;
  ui.recordLabel.textContent = 'Recording not supported here';
}
restoreConversation();
