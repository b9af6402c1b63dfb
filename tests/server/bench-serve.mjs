// bench-serve.mjs — the server benchmark (not a test): `frugal serve` on one
// model, then
//   - the idle RSS of the server before any model is loaded,
//   - the time from the first request for the unloaded model to its first
//     token (the load included),
//   - for 1, 4 and 8 concurrent streams of N generated tokens each
//     (ignore_eos, temperature 0): aggregate generated tokens per second
//     (all tokens ÷ wall time) and the mean time to first token,
//   - the peak RSS of the server.
// Prints one JSON object.  Usage:
//   node bench-serve.mjs FRUGAL_BIN MODEL.gguf [--threads N] [--tokens N] [--streams 1,4,8]
import { spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, basename } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const [bin, model] = args;
if (!bin || !model) {
  console.error('usage: node bench-serve.mjs FRUGAL_BIN MODEL.gguf [--threads N] [--tokens N] [--streams 1,4,8]');
  process.exit(2);
}
const threads = opt('--threads', '2');
const tokens = Number(opt('--tokens', '128'));
const streams = opt('--streams', '1,4,8').split(',').map(Number);
const maxStreams = Math.max(...streams);

const dir = mkdtempSync(join(tmpdir(), 'frugal-bench-'));
const id = basename(model, '.gguf');
symlinkSync(resolve(model), join(dir, `${id}.gguf`));

const rssKiB = (pid, key) => {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : 0;
};

const server = spawn(bin, ['serve', '--models', dir, '--port', '0', '--threads', threads,
  '--parallel', String(maxStreams), '--queue', '0', '--ctx', String(64 + tokens + 64),
  '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise((ok, fail) => {
  let log = '';
  server.stderr.on('data', (d) => {
    log += d;
    const m = log.match(/listening on http:\/\/[^\s]*:(\d+)/);
    if (m) ok(Number(m[1]));
  });
  server.on('exit', (code) => fail(new Error(`server exited (${code}): ${log}`)));
});
const base = `http://127.0.0.1:${port}`;

// One streaming completion; resolves with its timings.
async function stream(prompt) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: id, prompt, max_tokens: tokens, temperature: 0, ignore_eos: true,
      stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  let first = 0, n = 0, buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const o = JSON.parse(ev.slice(6));
      if (o.choices?.[0]?.text && !first) first = performance.now();
      if (o.usage) n = o.usage.completion_tokens;
    }
  }
  return { ttft: first - t0, total: performance.now() - t0, tokens: n };
}

const out = { model: basename(model), threads: Number(threads), tokens_per_stream: tokens };
out.idle_rss_mib = rssKiB(server.pid, 'VmRSS') / 1024;
const cold = await stream('Once upon a time');
out.cold_first_token_ms = cold.ttft;
await stream('Once upon a time');   // warm: every weight page is resident now
out.runs = [];
for (const c of streams) {
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: c }, (_, i) => stream(`Story number ${i}: once upon a time`)));
  const wall = (performance.now() - t0) / 1e3;
  const total = rs.reduce((a, r) => a + r.tokens, 0);
  out.runs.push({ streams: c, aggregate_tok_s: total / wall,
    ttft_ms_mean: rs.reduce((a, r) => a + r.ttft, 0) / c,
    ttft_ms_max: Math.max(...rs.map((r) => r.ttft)), tokens: total });
}
out.peak_rss_mib = rssKiB(server.pid, 'VmHWM') / 1024;
server.kill('SIGTERM');
await new Promise((ok) => server.on('exit', ok));
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(out));
