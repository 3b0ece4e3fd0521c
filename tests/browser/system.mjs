// Starts the real system for the browser tests: the broker, one worker per stage
// and the gateway from BUILD_DIR, on free loopback ports, each logging to a file
// in a scratch directory; and makes the spoken-question WAV files with espeak-ng.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const STAGES = ['stt', 'chat', 'tts', 'avatar'];

// A port the kernel just handed out and we let go again: free for the next start.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class System {
  constructor(buildDir) {
    this.buildDir = buildDir;
    this.work = mkdtempSync(join(tmpdir(), 'avatar-browser-'));
    this.processes = new Map();
  }

  // `settings`: extra environment for every process (e.g. BROKER_QUEUE_MAX).
  async start(settings = {}) {
    const [httpPort, brokerPort] = [await freePort(), await freePort()];
    this.base = `http://127.0.0.1:${httpPort}`;
    const endpoint = `tcp://127.0.0.1:${brokerPort}`;
    this.env = {
      ...process.env,
      BROKER_BIND: endpoint,
      BROKER_ENDPOINT: endpoint,
      GATEWAY_PORT: String(httpPort),
      GATEWAY_BIND: '127.0.0.1',
      MEDIA_DIR: join(this.work, 'media'),
      CONVERSATION_DB: join(this.work, 'conversations.db'),
      LOG_LEVEL: 'info',
      ...settings,
    };
    this.spawn('broker');
    STAGES.forEach((stage) => this.spawn(stage));
    this.spawn('gateway');
    await this.waitHealthy(15000);
  }

  spawn(name) {
    const path = name === 'gateway' ? 'gateway/gateway' : `services/${name}/${name}`;
    const log = openSync(join(this.work, `${name}.log`), 'a');
    // In the scratch directory, so any relative default path lands there too.
    const child = spawn(join(this.buildDir, path), [], {
      cwd: this.work,
      env: this.env,
      stdio: ['ignore', 'ignore', log],
    });
    closeSync(log);
    this.processes.set(name, child);
    return child;
  }

  async waitHealthy(limitMs) {
    const until = Date.now() + limitMs;
    while (Date.now() < until) {
      try {
        if ((await fetch(`${this.base}/healthz`)).status === 200) return;
      } catch (e) { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`system not healthy after ${limitMs} ms; logs in ${this.work}`);
  }

  // SIGSTOP / SIGCONT one process, e.g. a frozen worker lets its queue fill.
  signal(name, signal) {
    this.processes.get(name).kill(signal);
  }

  log(name) {
    return readFileSync(join(this.work, `${name}.log`), 'utf8');
  }

  async stop() {
    const exits = [];
    for (const child of this.processes.values()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(new Promise((resolve) => child.once('exit', resolve)));
      child.kill('SIGCONT');
      child.kill('SIGTERM');
    }
    const timeout = sleep(5000).then(() => {
      for (const child of this.processes.values()) if (child.exitCode === null) child.kill('SIGKILL');
    });
    await Promise.race([Promise.all(exits), timeout]);
    if (process.env.UI_KEEP_LOGS) console.log(`# service logs kept in ${this.work}`);
    else rmSync(this.work, { recursive: true, force: true });
  }

  // Speaks `text` into a 48 kHz mono WAV: `lead` seconds of silence before it
  // and `tail` after, so voice-activity detection sees speech end in silence.
  speech(name, text, lead, tail) {
    const raw = join(this.work, `${name}-raw.wav`);
    const wav = join(this.work, `${name}.wav`);
    execFileSync('espeak-ng', ['-w', raw, text]);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', raw, '-af',
      `adelay=${Math.round(lead * 1000)}:all=1,apad=pad_dur=${tail}`,
      '-ar', '48000', '-ac', '1', '-c:a', 'pcm_s16le', wav]);
    return wav;
  }

  // `seconds` of faint white noise (peak `amplitude`, full scale = 1) in a 48 kHz
  // mono WAV: a quiet room with nobody speaking.
  noise(name, seconds, amplitude) {
    const wav = join(this.work, `${name}.wav`);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i',
      `anoisesrc=color=white:amplitude=${amplitude}:duration=${seconds}:sample_rate=48000`,
      '-ac', '1', '-c:a', 'pcm_s16le', wav]);
    return wav;
  }
}
