// soak.mjs — the soak driver: many kinds of clients against one running
// `frugal serve` for SOAK_SECONDS, then a report and counted checks.
// Started by tests/soak/run.sh, which starts the server (loopback, --port
// 0), makes its models folder, budget, --data dir and fake sysfs, and
// after this script stops the server and runs `frugal index check`.
// Node's built-ins only (http, net, fs): nothing to install.
//
// The clients, each a loop of bounded requests from 127.0.0.1 (about
// sixteen connections at most, well under a per-address limit):
//   chat, chat-stream     /v1/chat/completions on a random chat model
//   completions           /v1/completions, streamed or not
//   embeddings            /v1/embeddings, 1 to 8 inputs
//   ingest                documents added and replaced from a fixed pool of
//                         ids (the index stays the same size), some deleted
//   search, ask           hybrid/bm25/vector search; ask streamed or not
//   admin                 /health, /v1/models, /v1/memory, /metrics, plan,
//                         and now and then an unload (409 when busy)
//   slow-reader           a stream read a few bytes at a time (raw socket);
//                         a long one is abandoned after SLOW_MAX_S
//   vanish                disconnects mid-stream, mid-body, and right after
//                         sending a whole request
//   half-headers          sends part of its headers, then waits for the
//                         server to close the connection
// The chat clients pick among three chat models whose budget fits two
// (run.sh), so models are loaded and evicted all the time; a pressure
// controller rewrites the fake cgroup's memory.current through ok,
// warning, critical and emergency.
//
// Every request has a deadline (DEADLINE_S); one that passes it is a hang.
// Statuses are counted by route; 503, 507, 429, 4xx are answers, not
// failures.  Failures: a 5xx other than 503/507, an error event of type
// server_error in a stream that is not a shed (overloaded, memory, shutting
// down, storage), a 200 whose body is not the route's shape or a stream
// that ends without [DONE], a reset of a request on a fresh connection, a
// hang, the server dying, a half-sent-headers connection the server never
// closes, and a leak: at quiet points (every client paused, idle models
// unloaded, kept-alive sockets closed) the server's VmRSS is sampled, and
// the slope of a least-squares line through the second half's samples
// must stay under LEAK_MB_MIN (generous for short runs); its open fds and
// threads must not grow either.  The peak RSS (VmHWM) above the idle
// server's must stay within the budget.  Under FRUGAL_SAN=1 (the ASan+UBSan
// build, whose RSS grows with the allocator's quarantine) the RSS slope
// and peak are reported, not checked; LeakSanitizer at exit checks leaks.
//
// Output: a table of requests by route and status with p50/p99 latency
// of the 2xx answers, the pressure swings, peak RSS (VmHWM) against the
// budget, the RSS slope, then "soak-driver: N passed, N failed" (run.sh
// adds it to its "soak: N passed, N failed").
import http from 'node:http';
import net from 'node:net';
import { readFileSync, readdirSync, writeFileSync, renameSync, existsSync } from 'node:fs';

const env = (k, d) => (process.env[k] !== undefined && process.env[k] !== '' ? process.env[k] : d);
const PORT = Number(env('PORT'));
const PID = Number(env('SERVER_PID'));
const SECONDS = Number(env('SOAK_SECONDS', '1800'));
const SAN = env('FRUGAL_SAN', '0') === '1';
const BUDGET = Number(env('BUDGET', '0'));
const IDLE_RSS = Number(env('IDLE_RSS', '0'));
const CHAT = env('CHAT_MODELS', '').split(',').filter(Boolean);
const EMBED = env('EMBED_MODEL');
const DIM = Number(env('EMBED_DIM', '0'));
const CG = env('CGROUP_DIR');                      // the fake cgroup's directory
const LIMIT = Number(env('CGROUP_LIMIT', '1000000000'));
const CONN_TIMEOUT_S = Number(env('CONN_TIMEOUT_S', '5'));
// A request's deadline: generous, a hang is minutes, not a slow answer.
const DEADLINE_S = Number(env('DEADLINE_S', SAN ? '240' : '90'));
const SLOW_MAX_S = Number(env('SLOW_MAX_S', '20'));
// The half-sent-headers client waits this long for the server to close.
const HALF_MAX_S = Math.max(60, 3 * CONN_TIMEOUT_S);
const HALF_MINUTES = SECONDS / 120;
// Leak limit in MB/min over the second half: ~12 MB over the half however
// long it is (noise of a short run), at least 1 MB/min.
const LEAK_MB_MIN = Number(env('LEAK_MB_MIN', String(Math.max(1, 12 / HALF_MINUTES))));
const QUIET_EVERY_S = Math.min(60, Math.max(10, SECONDS / 24));
const HOST = '127.0.0.1';
const COLLECTION = 'soak';

// ---- checks ----
const counts = { passed: 0, failed: 0 };
function check(what, cond, detail) {
  if (cond) counts.passed++;
  else {
    counts.failed++;
    console.log(`FAIL [soak]: ${what}${detail ? ` (${detail})` : ''}`);
  }
  return !!cond;
}

// ---- bookkeeping ----
const t0 = Date.now();
const endAt = t0 + SECONDS * 1000;
const stats = new Map();          // route -> { status -> n, lat: [ms of 2xx] }
const problems = [];              // [route, status, detail] of failures, the first few shown
let inFlight = 0;                 // requests that count for the quiet points
let stopping = false, quiet = false, serverDead = false;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const rand = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

// Statuses that are failures (strings are the driver's own outcomes).
const SHED_CODES = /^(overloaded|insufficient_memory|out_of_memory|shutting_down|insufficient_storage|disk_full|storage_full|timeout|request_timeout)$/;
function isFailure(status) {
  if (typeof status === 'number') return status >= 500 && status !== 503 && status !== 507;
  return /^(hang|reset|bad|truncated|stream-error:|held|refused|error:)/.test(status);
}
function record(route, status, ms, detail) {
  let s = stats.get(route);
  if (!s) stats.set(route, (s = { by: new Map(), lat: [] }));
  s.by.set(status, (s.by.get(status) || 0) + 1);
  if (typeof status === 'number' && status >= 200 && status < 300) s.lat.push(ms);
  if (isFailure(status)) {
    problems.push([route, status, detail]);
    if (problems.length <= 20) console.log(`problem: ${route} ${status} after ${ms} ms${detail ? `: ${String(detail).slice(0, 300)}` : ''}`);
  }
}

// ---- the server process ----
function procStatus() {
  try {
    const t = readFileSync(`/proc/${PID}/status`, 'utf8');
    const kb = (k) => { const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t); return m ? Number(m[1]) * 1024 : 0; };
    const th = /^Threads:\s+(\d+)/m.exec(t);
    const st = /^State:\s+(\S)/m.exec(t);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile'),
      threads: th ? Number(th[1]) : 0, state: st ? st[1] : '?' };
  } catch {
    return null;
  }
}
function fdCount() {
  try { return readdirSync(`/proc/${PID}/fd`).length; } catch { return -1; }
}
function alive() {
  const s = procStatus();
  return !!s && s.state !== 'Z' && s.state !== 'X';
}

// ---- HTTP with node's http module ----
const agent = new http.Agent({ keepAlive: true, maxSockets: 12, maxFreeSockets: 6 });

// One request: resolves { status, headers, text, events, done, error, ms, reused }.
// opts.stream parses server-sent events; the deadline aborts a hang.
function once(method, path, body, opts) {
  return new Promise((resolve) => {
    const start = Date.now();
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const out = { status: 0, headers: {}, text: '', events: [], done: false, error: null, ms: 0, reused: false };
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      out.ms = Date.now() - start;
      resolve(out);
    };
    const req = http.request({ host: HOST, port: PORT, method, path, agent,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} });
    const timer = setTimeout(() => { out.error = 'hang'; req.destroy(new Error('deadline')); finish(); },
      (opts.deadlineS || DEADLINE_S) * 1000);
    req.on('socket', () => { out.reused = req.reusedSocket; });
    req.on('error', (e) => { if (!out.error) out.error = e.code || e.message; finish(); });
    req.on('response', (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d) => {
        if (!opts.stream || res.statusCode !== 200) { out.text += d; return; }
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of ev.split('\n')) {
            if (!line.startsWith('data: ')) continue;
            const payload = line.slice(6);
            if (payload === '[DONE]') { out.done = true; continue; }
            try { out.events.push(JSON.parse(payload)); } catch { out.events.push({ unparsable: payload }); }
          }
        }
      });
      res.on('end', finish);
      res.on('aborted', () => { if (!out.error) out.error = 'aborted'; });
      res.on('error', (e) => { if (!out.error) out.error = e.code || e.message; finish(); });
      res.on('close', finish);
    });
    req.end(data);
  });
}

// A request retried once when a kept-alive socket was closed under it
// (the server may close an idle connection as the request goes out:
// Node's documented race); a fresh connection that fails is a failure.
async function call(method, path, body, opts = {}) {
  let r = await once(method, path, body, opts);
  if (r.error && r.error !== 'hang' && r.reused && r.status === 0) r = await once(method, path, body, opts);
  return r;
}

function json(r) {
  try { return JSON.parse(r.text); } catch { return undefined; }
}

// Classify one answer and record it; validate(body) says whether a 2xx
// has the route's shape.  Returns the parsed body of a 2xx or undefined.
function settle(route, r, validate) {
  if (r.error === 'hang') { record(route, 'hang', r.ms, `no answer within ${DEADLINE_S} s`); return undefined; }
  if (r.error && r.status === 0) {
    const dead = !alive();
    if (dead) serverDead = true;
    record(route, dead ? 'refused' : `error:${r.error}`, r.ms, dead ? 'the server is gone' : r.error);
    return undefined;
  }
  if (r.status < 200 || r.status >= 300) {
    record(route, r.status, r.ms, r.status >= 500 && r.status !== 503 && r.status !== 507 ? r.text : undefined);
    return undefined;
  }
  if (r.error) { record(route, 'truncated', r.ms, `${r.error} after status ${r.status}`); return undefined; }
  if (validate === 'stream') {
    const errs = r.events.filter((e) => e && e.error);
    const unparsable = r.events.find((e) => e && e.unparsable !== undefined);
    if (unparsable) { record(route, 'bad', r.ms, `unparsable event ${unparsable.unparsable}`); return undefined; }
    if (errs.length) {
      const e = errs[0].error;
      const shed = e.type !== 'server_error' || SHED_CODES.test(e.code);
      record(route, shed ? `${r.status}+${e.code}` : `stream-error:${e.code}`, r.ms, shed ? undefined : e.message);
      return undefined;
    }
    if (!r.done) { record(route, 'truncated', r.ms, 'stream ended without [DONE]'); return undefined; }
    record(route, r.status, r.ms);
    return r.events;
  }
  const j = json(r);
  if (j === undefined || (validate && !validate(j))) { record(route, 'bad', r.ms, r.text.slice(0, 300)); return undefined; }
  record(route, r.status, r.ms);
  return j;
}

// ---- texts: finite sets, so that every cache fills early and then holds ----
const WORDS = ('river mountain engine rocket glacier forest harbor violin pasta tomato orbit planet ' +
  'lantern castle meadow thunder copper silver garden library bridge canyon desert island ' +
  'compass feather marble ocean pepper quartz saddle tunnel valley window').split(' ');
const SENTENCES = Array.from({ length: 120 }, (_, i) => {
  const w = (k) => WORDS[(i * 7 + k * 13) % WORDS.length];
  return `The ${w(0)} near the ${w(1)} holds a ${w(2)} and a ${w(3)} (${i}).`;
});
const QUESTIONS = Array.from({ length: 40 }, (_, i) => `What is said about the ${WORDS[i % WORDS.length]} and the ${WORDS[(i * 5 + 3) % WORDS.length]}?`);
const DOC_IDS = Array.from({ length: 48 }, (_, i) => `doc-${i}`);

// ---- the clients ----
async function gate() {
  while (quiet && !stopping) await sleep(50);
}
function running() { return !stopping && !serverDead && Date.now() < endAt; }

// loop(fn): call fn until the end, pausing at quiet points; counted in
// inFlight while a request is out (unless fn opts out).
async function loop(name, fn, { pauseMs = [0, 150], counted = true } = {}) {
  while (running()) {
    await gate();
    if (!running()) break;
    if (counted) inFlight++;
    try {
      await fn();
    } catch (e) {
      record(name, 'error:exception', 0, `${e && e.stack}`);
    } finally {
      if (counted) inFlight--;
    }
    await sleep(rand(pauseMs[0], pauseMs[1]));
  }
}

const chatBody = (stream) => ({
  model: pick(CHAT), messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: pick(SENTENCES) }],
  max_tokens: rand(2, 24), temperature: pick([0, 0.7]), seed: rand(1, 1000), stream,
  ...(stream ? { stream_options: { include_usage: true } } : {}),
  ...(Math.random() < 0.2 ? { keep_alive: pick(['0', '2s', '30s']) } : {}),
});

async function chat() {
  const r = await call('POST', '/v1/chat/completions', chatBody(false));
  settle('chat', r, (j) => Array.isArray(j.choices) && j.choices[0] && typeof j.choices[0].message === 'object' && j.usage);
}
async function chatStream() {
  const r = await call('POST', '/v1/chat/completions', chatBody(true), { stream: true });
  settle('chat-stream', r, 'stream');
}
async function completions() {
  const stream = Math.random() < 0.5;
  const body = { model: pick(CHAT), prompt: pick(SENTENCES), max_tokens: rand(1, 32), temperature: 0, stream };
  const r = await call('POST', '/v1/completions', body, { stream });
  if (stream) settle('completions-stream', r, 'stream');
  else settle('completions', r, (j) => Array.isArray(j.choices) && typeof j.choices[0].text === 'string');
}
async function embeddings() {
  const n = rand(1, 8);
  const input = n === 1 && Math.random() < 0.5 ? pick(SENTENCES) : Array.from({ length: n }, () => pick(SENTENCES));
  const want = Array.isArray(input) ? input.length : 1;
  const r = await call('POST', '/v1/embeddings', { model: EMBED, input });
  settle('embeddings', r, (j) => Array.isArray(j.data) && j.data.length === want &&
    j.data.every((d) => Array.isArray(d.embedding) && (!DIM || d.embedding.length === DIM)));
}
async function ingest() {
  if (Math.random() < 0.1) {
    const r = await call('DELETE', `/v1/collections/${COLLECTION}/documents/${pick(DOC_IDS)}`);
    settle('delete', r, (j) => j.deleted === true);    // 404 when already gone: an answer
    return;
  }
  const n = rand(1, 4);
  const ids = [...new Set(Array.from({ length: n }, () => pick(DOC_IDS)))];
  const documents = ids.map((id) => ({ id, text: Array.from({ length: rand(1, 6) }, () => pick(SENTENCES)).join(' '),
    metadata: { group: rand(0, 3) } }));
  const r = await call('POST', `/v1/collections/${COLLECTION}/documents`, { model: EMBED, documents });
  settle('ingest', r, (j) => Array.isArray(j.results) && j.results.length === ids.length &&
    j.results.every((x) => ['added', 'replaced', 'unchanged'].includes(x.status)));
}
async function search() {
  const body = { query: pick(QUESTIONS), mode: pick(['hybrid', 'bm25', 'vector']), top_k: rand(1, 10) };
  if (Math.random() < 0.2) body.filter = { group: rand(0, 3) };
  if (Math.random() < 0.2) body.group_by_document = true;
  const r = await call('POST', `/v1/collections/${COLLECTION}/search`, body);
  settle('search', r, (j) => Array.isArray(j.results) && j.results.length <= body.top_k);
}
async function ask() {
  const stream = Math.random() < 0.5;
  const body = { question: pick(QUESTIONS), model: pick(CHAT), top_k: rand(1, 3), max_tokens: rand(4, 24), temperature: 0, stream };
  const r = await call('POST', `/v1/collections/${COLLECTION}/ask`, body, { stream });
  if (stream) settle('ask-stream', r, 'stream');
  else settle('ask', r, (j) => typeof j.answer === 'string' && Array.isArray(j.sources));
}

// admin: reads, and sometimes a plan, a load or an unload; records the
// memory levels it sees (the pressure swings as the server reads them).
const levelsSeen = new Map();
let lastMemory = null;
async function admin() {
  const what = rand(0, 9);
  if (what <= 2) {
    const j = settle('memory', await call('GET', '/v1/memory'), (x) => typeof x.level === 'string' && x.budget_bytes > 0);
    if (j) { levelsSeen.set(j.level, (levelsSeen.get(j.level) || 0) + 1); lastMemory = j; }
  } else if (what === 3) {
    settle('health', await call('GET', '/health'), (x) => x.status === 'ok');
  } else if (what === 4) {
    settle('models', await call('GET', '/v1/models'), (x) => Array.isArray(x.data));
  } else if (what === 5) {
    const r = await call('GET', '/metrics');
    if (r.status === 200 && !/^frugal_http_requests_total\{/m.test(r.text)) record('metrics', 'bad', r.ms, r.text.slice(0, 200));
    else settle('metrics', { ...r, text: '{}' }, null);
  } else if (what === 6) {
    settle('plan', await call('POST', '/v1/models/plan', { model: pick(CHAT) }), (x) => typeof x.fits === 'boolean');
  } else if (what === 7) {
    settle('unload', await call('POST', `/v1/models/${pick(CHAT)}/unload`, {}), null);   // 409 when busy
  } else if (what === 8) {
    settle('load', await call('POST', `/v1/models/${pick(CHAT)}/load`, {}), null);       // 503 when it cannot fit
  } else {
    settle('collection', await call('GET', `/v1/collections/${COLLECTION}`), (x) => x.name === COLLECTION);
  }
}

// ---- raw-socket clients ----
// rawRequest: the bytes of one HTTP/1.1 request with a JSON body.
function rawRequest(path, body, { close = true } = {}) {
  const data = Buffer.from(JSON.stringify(body));
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${data.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`), data]);
}
function connect(opts = {}) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port: PORT, ...opts });
    const done = (err) => { s.removeAllListeners('connect'); resolve({ s, err }); };
    s.once('connect', () => done(null));
    s.once('error', (e) => done(e));
  });
}

// slow-reader: a stream read 16 bytes every 20 ms through a 64-byte
// buffer, so the kernel's buffers fill and the server's writes wait.  A
// short stream must end whole; a long one (logprobs, up to 400 tokens) is
// given up after SLOW_MAX_S.  A server that drops it is counted, not failed.
async function slowReader() {
  const long = Math.random() < 0.5;
  const body = { model: pick(CHAT), prompt: pick(SENTENCES), stream: true, temperature: 0,
    max_tokens: long ? 400 : rand(4, 16), ...(long ? { logprobs: 5 } : {}) };
  const route = long ? 'slow-reader-long' : 'slow-reader';
  const start = Date.now();
  const { s, err } = await connect({ readableHighWaterMark: 64 });
  if (err) { record(route, alive() ? `error:${err.code}` : 'refused', Date.now() - start, err.message); return; }
  let ended = false, error = null;
  s.on('end', () => { ended = true; });
  s.on('close', () => { ended = true; });
  s.on('error', (e) => { error = e.code || e.message; });
  s.write(rawRequest('/v1/completions', body));
  const chunks = [];
  const limit = start + (long ? SLOW_MAX_S : DEADLINE_S) * 1000;
  // (a long one also gives up at a quiet point, which waits for it)
  while (!ended && Date.now() < limit && !(long && quiet)) {
    await sleep(20);
    let c;
    if ((c = s.read(16)) !== null) chunks.push(c);
  }
  let c;
  while ((c = s.read()) !== null) chunks.push(c);
  s.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  const ms = Date.now() - start;
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const status = m ? Number(m[1]) : 0;
  if (!ended) {
    if (long) record(route, status === 200 ? 'gave-up' : status, ms);
    else record(route, 'hang', ms, `stream not over after ${DEADLINE_S} s (${text.length} bytes read)`);
  } else if (status === 0) {
    record(route, alive() ? (error ? `error:${error}` : 'dropped-before-status') : 'refused', ms, error || 'no status line');
  } else if (status !== 200) {
    record(route, status, ms);
  } else if (text.includes('data: [DONE]')) {
    const shed = /"type":"server_error","param":null,"code":"(\w+)"/.exec(text);
    if (shed && !SHED_CODES.test(shed[1])) record(route, `stream-error:${shed[1]}`, ms, text.slice(-300));
    else record(route, shed ? `200+${shed[1]}` : 200, ms);
  } else {
    record(route, long ? 'dropped' : 'truncated', ms, `${text.length} bytes, no [DONE]`);
  }
}

// vanish: gone mid-stream, mid-body, or right after a whole request.
async function vanish() {
  const kind = pick(['mid-stream', 'mid-body', 'after-request']);
  const route = `vanish-${kind}`;
  const start = Date.now();
  const { s, err } = await connect();
  if (err) { record(route, alive() ? `error:${err.code}` : 'refused', Date.now() - start, err.message); return; }
  s.on('error', () => {});
  if (kind === 'mid-stream') {
    const req = rawRequest('/v1/chat/completions', { ...chatBody(true), max_tokens: 200 });
    s.write(req);
    // gone after the first bytes of the answer (or a short wait)
    await new Promise((resolve) => {
      const t = setTimeout(resolve, rand(50, 1500));
      s.once('data', () => { clearTimeout(t); setTimeout(resolve, rand(0, 100)); });
    });
  } else if (kind === 'mid-body') {
    const req = rawRequest(pick(['/v1/embeddings', '/v1/chat/completions', `/v1/collections/${COLLECTION}/documents`]),
      { model: EMBED, input: SENTENCES.slice(0, 20), documents: [{ id: 'gone', text: SENTENCES.join(' ') }] });
    s.write(req.subarray(0, rand(req.indexOf('\r\n\r\n') + 4, req.length - 1)));
    await sleep(rand(0, 300));
  } else {
    s.write(rawRequest(pick(['/v1/chat/completions', '/v1/embeddings']),
      { ...chatBody(false), model: pick([...CHAT, EMBED]), input: pick(SENTENCES) }));
    await sleep(rand(0, 30));
  }
  s.destroy();
  record(route, 'gone', Date.now() - start);
}

// half-headers: part of a request's headers, then nothing; the server must
// close the connection (its header or connection timeout) within HALF_MAX_S.
async function halfHeaders() {
  const start = Date.now();
  const { s, err } = await connect();
  if (err) { record('half-headers', alive() ? `error:${err.code}` : 'refused', Date.now() - start, err.message); return; }
  let closed = false, got = '';
  s.on('data', (d) => { got += d.toString('latin1'); });
  s.on('close', () => { closed = true; });
  s.on('end', () => { closed = true; });
  s.on('error', () => { closed = true; });
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nContent-Type: application/js`;
  s.write(head.slice(0, rand(8, head.length)));
  while (!closed && Date.now() - start < HALF_MAX_S * 1000 && !stopping) await sleep(100);
  const ms = Date.now() - start;
  if (closed) {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
    record('half-headers', m ? `closed-${m[1]}` : 'closed', ms);
  } else if (!stopping) {
    record('half-headers', 'held', ms, `still open after ${HALF_MAX_S} s`);
  } else {
    record('half-headers', 'stopped', ms);
  }
  s.destroy();
}

// ---- memory pressure through the fake cgroup ----
// One cycle: ok, warning, ok, critical, ok, emergency (short), ok.
const CYCLE = [['ok', 50, 14], ['warning', 85, 6], ['ok', 50, 4], ['critical', 92, 6], ['ok', 50, 6], ['emergency', 97, 4], ['ok', 40, 6]];
const swings = new Map();
function setPressure(pct) {
  if (!CG) return;
  const w = (name, v) => { writeFileSync(`${CG}/${name}.tmp`, `${v}\n`); renameSync(`${CG}/${name}.tmp`, `${CG}/${name}`); };
  w('memory.max', LIMIT);
  w('memory.current', Math.floor(LIMIT / 100 * pct));
}
// A quiet point pauses the cycle (at 50%); it resumes with what was left
// of the phase the pause cut short.
let pressurePaused = false;
async function pressure() {
  if (!CG || !existsSync(CG)) return;
  let i = 0, left = 0;
  while (running()) {
    const [level, pct, secs] = CYCLE[i % CYCLE.length];
    while (running() && pressurePaused) await sleep(100);
    if (left <= 0) {
      left = secs * 1000;
      swings.set(level, (swings.get(level) || 0) + 1);
    }
    setPressure(pct);
    while (running() && left > 0 && !pressurePaused) { await sleep(100); left -= 100; }
    if (left <= 0) i++;
  }
  setPressure(50);
}

// ---- quiet points: the leak samples ----
const samples = [];   // { t (s), rss, anon, fds, threads }
async function quietPoint() {
  quiet = true;
  pressurePaused = true;
  setPressure(50);
  const waitUntil = Date.now() + (DEADLINE_S + 10) * 1000;
  while (inFlight > 0 && Date.now() < waitUntil && alive()) await sleep(50);
  if (inFlight > 0) console.log(`note: quiet point with ${inFlight} requests still out`);
  // close the kept-alive sockets, so the server's fd count is its own
  for (const list of Object.values(agent.freeSockets)) for (const s of list) s.destroy();
  await sleep(300);
  const r = await call('POST', '/v1/memory/unload', {});
  settle('memory-unload', r, (j) => typeof j === 'object');
  await sleep(500);
  const st = procStatus();
  const m = settle('memory', await call('GET', '/v1/memory'), (x) => typeof x.heap_bytes === 'number');
  if (st) samples.push({ t: (Date.now() - t0) / 1000, rss: st.rss, anon: st.anon, fds: fdCount(), threads: st.threads,
    heap: m ? m.heap_bytes : NaN });
  pressurePaused = false;
  quiet = false;
}
async function quietPoints() {
  let next = t0 + QUIET_EVERY_S * 1000;
  while (running()) {
    while (running() && Date.now() < next) await sleep(100);
    if (!running()) break;
    await quietPoint();
    next = Date.now() + QUIET_EVERY_S * 1000;
  }
}

// ---- watchdogs ----
let peak = { hwm: 0, rss: 0 };
async function watch() {
  while (!stopping) {
    const st = procStatus();
    if (!st || st.state === 'Z' || st.state === 'X') { serverDead = true; break; }
    peak = { hwm: Math.max(peak.hwm, st.hwm), rss: Math.max(peak.rss, st.rss) };
    await sleep(250);
  }
}

// ---- the report ----
function pct(a, p) {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
function slope(pts, key) {     // least squares: MB per minute
  const n = pts.length;
  if (n < 3) return NaN;
  const xs = pts.map((p) => p.t / 60), ys = pts.map((p) => p[key] / 1048576);
  const mx = xs.reduce((a, b) => a + b) / n, my = ys.reduce((a, b) => a + b) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) ** 2; }
  return sxx ? sxy / sxx : NaN;
}
const MiB = (b) => (b / 1048576).toFixed(1);

async function main() {
  console.log(`soak: ${SECONDS} s against pid ${PID} on port ${PORT}${SAN ? ' (sanitizer build)' : ''}; ` +
    `chat models ${CHAT.join(', ')}; embedding model ${EMBED}; budget ${MiB(BUDGET)} MiB; deadline ${DEADLINE_S} s`);
  setPressure(50);
  // the collection, and a few documents so that search and ask find something
  const c = await call('POST', '/v1/collections', { name: COLLECTION, model: EMBED, chunk_size: 64, chunk_overlap: 8 });
  check(`the collection is made (status ${c.status}: ${c.text.slice(0, 200)})`, c.status === 201);
  for (let i = 0; i < 3; i++) await ingest();

  const watcher = watch();
  const clients = [
    loop('chat', chat), loop('chat', chat),
    loop('chat-stream', chatStream), loop('chat-stream', chatStream),
    loop('completions', completions),
    loop('embeddings', embeddings), loop('embeddings', embeddings),
    loop('ingest', ingest, { pauseMs: [50, 400] }),
    loop('search', search), loop('ask', ask),
    loop('admin', admin, { pauseMs: [100, 600] }),
    loop('slow-reader', slowReader, { pauseMs: [200, 1000] }),
    loop('vanish', vanish, { pauseMs: [100, 800] }),
    loop('half-headers', halfHeaders, { pauseMs: [500, 2000], counted: false }),
    pressure(), quietPoints(),
  ];
  const progress = setInterval(() => {
    let n = 0;
    for (const s of stats.values()) for (const v of s.by.values()) n += v;
    const st = procStatus();
    console.log(`soak: ${Math.round((Date.now() - t0) / 1000)} s, ${n} requests, ${problems.length} problems, ` +
      `RSS ${st ? MiB(st.rss) : '?'} MiB${serverDead ? ', SERVER GONE' : ''}`);
  }, Math.max(10, Math.min(60, SECONDS / 10)) * 1000);
  await Promise.race([Promise.all(clients), (async () => { while (!serverDead && !stopping) await sleep(200); })()]);
  // a last quiet point at the end, for the slope's last sample
  if (!serverDead) await quietPoint();
  stopping = true;
  clearInterval(progress);
  await watcher;
  const st = procStatus();
  if (st) peak = { hwm: Math.max(peak.hwm, st.hwm), rss: Math.max(peak.rss, st.rss) };

  // ---- report ----
  const wall = (Date.now() - t0) / 1000;
  console.log(`\nsoak report: ${wall.toFixed(0)} s (${(wall / 60).toFixed(1)} min)`);
  console.log(`${'route'.padEnd(22)}${'requests'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}  statuses (p50/p99 of 2xx)`);
  let total = 0;
  const routes = [...stats.keys()].sort();
  for (const route of routes) {
    const s = stats.get(route);
    let n = 0;
    for (const v of s.by.values()) n += v;
    total += n;
    const by = [...s.by.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0]))).map(([k, v]) => `${k}:${v}`).join(' ');
    const f = (x) => (Number.isNaN(x) ? '-' : String(Math.round(x)));
    console.log(`${route.padEnd(22)}${String(n).padStart(9)}${f(pct(s.lat, 50)).padStart(9)}${f(pct(s.lat, 99)).padStart(9)}  ${by}`);
  }
  const allBy = new Map();
  for (const s of stats.values()) for (const [k, v] of s.by) allBy.set(k, (allBy.get(k) || 0) + v);
  console.log(`${'all'.padEnd(22)}${String(total).padStart(9)}${''.padStart(18)}  ` +
    [...allBy.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0]))).map(([k, v]) => `${k}:${v}`).join(' '));
  console.log(`pressure swings: ${[...swings.entries()].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; ` +
    `levels seen by /v1/memory: ${[...levelsSeen.entries()].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  if (lastMemory) {
    const e = lastMemory.evictions || {}, l = lastMemory.loads || {};
    console.log(`models: loads ${l.total}, load failures ${l.failures}, shed for the budget ${l.shed_budget}, ` +
      `shed at emergency ${l.shed_emergency}; evictions lru ${e.lru}, keep_alive ${e.keep_alive}, ` +
      `critical ${e.critical}, emergency ${e.emergency}, request ${e.request}`);
  }
  const above = peak.hwm - IDLE_RSS;
  console.log(`peak RSS (VmHWM) ${MiB(peak.hwm)} MiB (sampled VmRSS max ${MiB(peak.rss)} MiB); idle ${MiB(IDLE_RSS)} MiB; ` +
    `peak above idle ${MiB(above)} MiB against a budget of ${MiB(BUDGET)} MiB (${(100 * above / BUDGET).toFixed(0)}%)`);
  const half = samples.filter((p) => p.t >= wall / 2);
  const sRss = slope(half, 'rss'), sAnon = slope(half, 'anon');
  console.log(`quiet points: ${samples.length} (every ${QUIET_EVERY_S.toFixed(0)} s); VmRSS ` +
    samples.map((p) => `${p.t.toFixed(0)}s:${MiB(p.rss)}`).join(' ') + ' MiB');
  console.log(`  counted heap (/v1/memory heap_bytes) ${samples.map((p) => MiB(p.heap)).join(' ')} MiB`);
  console.log(`  fds ${samples.map((p) => p.fds).join(' ')}; threads ${samples.map((p) => p.threads).join(' ')}`);
  console.log(`RSS slope over the second half (${half.length} quiet points): ${sRss.toFixed(3)} MB/min ` +
    `(anonymous ${sAnon.toFixed(3)}, counted heap ${slope(half, 'heap').toFixed(3)} MB/min); limit ${LEAK_MB_MIN.toFixed(2)} MB/min${SAN ? ' (not checked: sanitizer build)' : ''}`);

  // ---- checks ----
  check('the server stayed up for the whole run', !serverDead && alive());
  const FAILS = [
    ['no 5xx other than 503/507', (k) => typeof k === 'number' && isFailure(k)],
    ['no request hung past its deadline', (k) => k === 'hang'],
    ['no malformed 2xx answer or truncated stream', (k) => k === 'bad' || k === 'truncated'],
    ['no server_error in a stream other than a shed', (k) => String(k).startsWith('stream-error:')],
    ['no reset or refused request on a fresh connection', (k) => String(k).startsWith('error:') || k === 'refused'],
    ['every half-sent-headers connection closed by the server', (k) => k === 'held'],
  ];
  for (const [what, is] of FAILS) {
    const bad = [];
    for (const [route, s] of stats) for (const [k, v] of s.by) if (is(k)) bad.push(`${route} ${k}:${v}`);
    check(what, bad.length === 0, bad.join(', '));
  }
  for (const route of ['chat', 'chat-stream', 'completions', 'embeddings', 'ingest', 'search', 'ask', 'slow-reader']) {
    const s = stats.get(route);
    const ok = s ? [...s.by.entries()].filter(([k]) => typeof k === 'number' && k >= 200 && k < 300).reduce((a, [, v]) => a + v, 0) : 0;
    check(`${route}: at least one 2xx answer (${ok})`, ok > 0);
  }
  check('half-headers: at least one connection tried', stats.has('half-headers'));
  check('vanishing clients ran', [...stats.keys()].some((k) => k.startsWith('vanish-')));
  if (CG) {
    check(`the pressure swings reached /v1/memory (${[...levelsSeen.keys()].join(', ')})`,
      levelsSeen.has('ok') && ['warning', 'critical', 'emergency'].some((l) => levelsSeen.has(l)));
  }
  if (lastMemory) check(`models were loaded and evicted (${lastMemory.loads && lastMemory.loads.total} loads)`,
    lastMemory.loads && lastMemory.loads.total >= 3);
  // the budget bounds what the manager counts (resident weights, KV,
  // scratch, the counted heap: caches, the index); the process's peak
  // above its idle RSS must stay inside it (budget.sh asserts the same)
  if (!SAN && BUDGET > 0 && IDLE_RSS > 0) {
    check(`peak RSS above idle ${MiB(above)} MiB <= budget ${MiB(BUDGET)} MiB`, above <= BUDGET);
  }
  if (half.length >= 3 && !SAN) {
    check(`no leak: RSS slope ${sRss.toFixed(3)} MB/min <= ${LEAK_MB_MIN.toFixed(2)} over the second half`, sRss <= LEAK_MB_MIN);
  } else if (!SAN && SECONDS >= 120) {
    check(`enough quiet points for the slope (${half.length} in the second half)`, false);
  } else if (!SAN) {
    console.log(`note: ${half.length} quiet points in the second half: too few for a slope (a run under 2 minutes)`);
  }
  if (samples.length >= 2) {
    const first = samples[0], last = samples[samples.length - 1];
    check(`no fd leak: ${first.fds} fds at the first quiet point, ${last.fds} at the last`, last.fds <= first.fds + 8);
    check(`no thread leak: ${first.threads} threads at the first quiet point, ${last.threads} at the last`, last.threads <= first.threads + 8);
  }
  console.log(`soak-driver: ${counts.passed} passed, ${counts.failed} failed`);
  process.exitCode = counts.failed ? 1 : 0;
}

main().catch((e) => {
  console.log(`soak driver crashed: ${e && e.stack}`);
  counts.failed++;
  console.log(`soak-driver: ${counts.passed} passed, ${counts.failed} failed`);
  process.exitCode = 1;
});
