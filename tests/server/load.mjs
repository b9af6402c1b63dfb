// load.mjs — 32 concurrent streaming clients against one model with
// --parallel 4 --queue 8 (started by load.sh with PORT, SERVER_PID,
// BUDGET and IDLE_RSS).
//
// Every request either completes with the text the same request gets
// alone (temperature 0) or is refused with 503 and an integer Retry-After
// >= 1; none outlives its deadline (the body's "timeout", the server's
// per-request deadline, plus a client-side abort); at least one 503 and
// at least 12 completions (32 > 4 + 8); the server's RSS stays within its
// budget above its idle RSS; afterwards /health is ok, a new request
// succeeds and /metrics counts the sheds.  Then the deadline itself: a
// request queued behind four long ones with timeout 0.3 s ends with
// finish_reason 'length' soon after, its text a prefix of its full answer.
import { readFileSync } from 'node:fs';
import { base, check, done, eq } from './common.mjs';

const MODEL = process.env.MODEL || 'tiny-llama-q8_0';
// "The same text as alone": exactly (NEAR_TIE 0: f16/f32 weights, where a
// batch computes what one sequence alone does), or — with quantized
// weights, whose activations are rounded to 8 bits after every matmul, so
// that a batch's other summation order can flip a near-tie — the same
// tokens until the first step where the request alone had a near-tie
// (its top two logprobs closer than NEAR_TIE: testdata/README's margin for
// the type), and from there on anything the model may say.
const NEAR_TIE = Number(process.env.NEAR_TIE || '0');
const PID = process.env.SERVER_PID;
const BUDGET = Number(process.env.BUDGET);
const IDLE_RSS = Number(process.env.IDLE_RSS);
const CLIENTS = 32, SLOTS = 4, QUEUE = 8;
const MAX_TOKENS = 160;
const DEADLINE_S = 60;                      // the server's, per request
const CLIENT_MS = (DEADLINE_S + 30) * 1000; // ours: a request must not hang past it
const PROMPTS = ['The quick brown fox', 'Once upon a time', 'In the beginning', 'Hello, world'];

function rssNow() {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${PID}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// One streaming completion: { status, retryAfter, text, finish, usage, ms, error }.
async function stream(prompt, extra = {}) {
  const t0 = Date.now();
  const body = { model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true,
    stream_options: { include_usage: true }, timeout: DEADLINE_S, logprobs: 2, ...extra };
  const out = { status: 0, retryAfter: null, text: '', finishes: [], usage: null, ms: 0, error: null, done: false, body: null,
    tokens: [], margins: [] };
  try {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      signal: AbortSignal.timeout(CLIENT_MS),
    });
    out.status = res.status;
    out.retryAfter = res.headers.get('retry-after');
    if (res.status !== 200) {
      out.body = await res.text();
    } else {
      const dec = new TextDecoder();
      let buf = '';
      for await (const part of res.body) {
        buf += dec.decode(part, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') { out.done = true; continue; }
          const j = JSON.parse(data);
          if (j.error) out.error = j.error;
          if (j.usage) out.usage = j.usage;
          for (const c of j.choices || []) {
            out.text += c.text || '';
            if (c.finish_reason) out.finishes.push(c.finish_reason);
            const lp = c.logprobs;
            if (lp && lp.tokens) {
              out.tokens.push(...lp.tokens);
              for (const t of lp.top_logprobs) {
                const v = Object.values(t).sort((a, b) => b - a);
                out.margins.push(v.length >= 2 ? v[0] - v[1] : 0);   // two tokens of one text: a tie
              }
            }
          }
        }
      }
    }
  } catch (e) {
    out.error = `${e.name}: ${e.message}`;
  }
  out.ms = Date.now() - t0;
  return out;
}

async function main() {
  // references: each prompt alone
  const ref = {};
  for (const p of PROMPTS) {
    const r = await stream(p);
    check(`alone: '${p}' is 200 and finishes`, r.status === 200 && r.done && r.finishes.length === 1, r);
    ref[p] = r;
  }

  let rssMax = rssNow();
  const timer = setInterval(() => { rssMax = Math.max(rssMax, rssNow()); }, 10);
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => stream(PROMPTS[i % PROMPTS.length]).then((r) => ({ ...r, prompt: PROMPTS[i % PROMPTS.length], i }))));
  const wall = Date.now() - t0;
  clearInterval(timer);
  rssMax = Math.max(rssMax, rssNow());

  let completed = 0, shed = 0, other = 0, ties = 0;
  for (const r of results) {
    if (r.status === 200) {
      completed++;
      const want = ref[r.prompt];
      let tie = NEAR_TIE > 0 ? want.margins.findIndex((m) => m < NEAR_TIE) : -1;
      if (tie < 0) {
        let k = 0;
        while (k < r.text.length && r.text[k] === want.text[k]) k++;
        check(`client ${r.i} ('${r.prompt}'): text = the same request alone`, r.text === want.text,
          `they differ from character ${k} of ${want.text.length}: ${JSON.stringify(r.text.slice(Math.max(0, k - 20), k + 20))} vs alone ${JSON.stringify(want.text.slice(Math.max(0, k - 20), k + 20))}`);
        eq(`client ${r.i}: finish_reason`, r.finishes, want.finishes);
        eq(`client ${r.i}: usage`, r.usage, want.usage);
      } else {
        eq(`client ${r.i} ('${r.prompt}'): tokens = alone up to its first near-tie (step ${tie} of ${want.tokens.length})`,
          r.tokens.slice(0, tie), want.tokens.slice(0, tie));
        eq(`client ${r.i}: prompt tokens`, r.usage && r.usage.prompt_tokens, want.usage.prompt_tokens);
        check(`client ${r.i}: finishes once`, r.finishes.length === 1, r.finishes);
        ties++;
      }
      check(`client ${r.i}: the stream ends with [DONE], no error event`, r.done && !r.error, r.error);
    } else if (r.status === 503) {
      shed++;
      check(`client ${r.i}: 503 has Retry-After, an integer >= 1 (${r.retryAfter})`, /^[0-9]+$/.test(r.retryAfter || '') && Number(r.retryAfter) >= 1);
      let e;
      try { e = JSON.parse(r.body).error; } catch { e = undefined; }
      check(`client ${r.i}: 503 has the error shape, code overloaded`, e && e.code === 'overloaded' && e.type === 'server_error' && typeof e.message === 'string' && 'param' in e, r.body);
    } else {
      other++;
      check(`client ${r.i}: 200 or 503`, false, { status: r.status, error: r.error, ms: r.ms, body: r.body });
    }
    check(`client ${r.i}: answered within its deadline (${r.ms} ms)`, r.ms < DEADLINE_S * 1000, r.ms);
  }
  console.log(`load (${MODEL}): ${CLIENTS} clients in ${wall} ms: ${completed} completed (${ties} compared up to a near-tie), ${shed} shed (503), ${other} other; RSS peak ${rssMax} (idle ${IDLE_RSS}, budget ${BUDGET})`);
  check(`at least one 503 (${shed}) with ${CLIENTS} clients > ${SLOTS} slots + ${QUEUE} queued`, shed >= 1);
  check(`at least ${SLOTS + QUEUE} completed (${completed})`, completed >= SLOTS + QUEUE);
  if (process.env.FRUGAL_SAN === '1') console.log(`note: RSS peak ${rssMax} - idle ${IDLE_RSS} vs budget ${BUDGET} not checked (sanitizer build)`);
  else check(`RSS peak ${rssMax} - idle ${IDLE_RSS} <= budget ${BUDGET}`, rssMax > 0 && rssMax - IDLE_RSS <= BUDGET);

  // afterwards
  const h = await fetch(`${base}/health`);
  eq('/health after the load', [h.status, await h.json()], [200, { status: 'ok' }]);
  const again = await stream(PROMPTS[0]);
  eq('a new request after the load succeeds', again.status, 200);
  eq('a new request after the load: the same text', again.text, ref[PROMPTS[0]].text);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const m = /^frugal_sheds_total\{reason="queue_full"\} (\d+)$/m.exec(metrics);
  eq('/metrics: frugal_sheds_total{reason="queue_full"} counts the 503s', m && Number(m[1]), shed);
  const busy = /^frugal_slots_busy\{model="[^"]+"\} (\d+)$/m.exec(metrics);
  eq('/metrics: no slot busy afterwards', busy && Number(busy[1]), 0);
  const q = /^frugal_queue_depth\{model="[^"]+"\} (\d+)$/m.exec(metrics);
  eq('/metrics: the queue is empty afterwards', q && Number(q[1]), 0);

  // the deadline: four long requests take the slots, a fifth waits with
  // timeout 0.3 s and must end 'length' about then
  const LONG = 900;
  const longOnes = Array.from({ length: SLOTS }, (_, i) => stream(PROMPTS[i], { max_tokens: LONG, ignore_eos: true }));
  await new Promise((r) => setTimeout(r, 0));
  const full = ref[PROMPTS[1]];
  let deadlined;
  for (let tries = 0; tries < 50; tries++) {     // until the slots are taken
    const mt = await (await fetch(`${base}/metrics`)).text();
    const b = /^frugal_slots_busy\{model="[^"]+"\} (\d+)$/m.exec(mt);
    if (b && Number(b[1]) === SLOTS) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  deadlined = await stream(PROMPTS[1], { timeout: 0.3 });
  const longs = await Promise.all(longOnes);
  eq('deadline: the request is 200', deadlined.status, 200);
  eq('deadline: finish_reason length', deadlined.finishes, ['length']);
  check(`deadline: fewer tokens than max_tokens (${deadlined.usage && deadlined.usage.completion_tokens})`, deadlined.usage && deadlined.usage.completion_tokens < MAX_TOKENS, deadlined.usage);
  const fullTie = NEAR_TIE > 0 ? full.margins.findIndex((m) => m < NEAR_TIE) : -1;
  if (fullTie < 0) check(`deadline: its text is a prefix of its full answer`, full.text.startsWith(deadlined.text), deadlined.text);
  else {
    const n = Math.min(fullTie, deadlined.tokens.length);
    eq(`deadline: its tokens are its full answer's up to the first near-tie`, deadlined.tokens.slice(0, n), full.tokens.slice(0, n));
  }
  check(`deadline: it ended soon after 0.3 s (${deadlined.ms} ms), before the long ones`, deadlined.ms < 5000 && longs.some((l) => l.ms > deadlined.ms), { ms: deadlined.ms, long: longs.map((l) => l.ms) });
  check('deadline: the long requests completed', longs.every((l) => l.status === 200 && l.finishes[0] === 'length' && l.usage && l.usage.completion_tokens === LONG), longs.map((l) => [l.status, l.finishes, l.usage]));
}

try {
  await main();
} catch (e) {
  check('load: unexpected exception', false, e && e.stack);
}
done();
