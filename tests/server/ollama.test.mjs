// ollama.test.mjs — frugal through the official `ollama` npm package, as
// an application built for Ollama uses it.  Started by ollama.sh with PORT
// (a running `frugal serve` on tiny-llama-q8_0, tiny-qwen2-q8_0 and
// tiny-bert-q8_0).
//
// list (the models with :latest and details), ps, show, generate and chat
// (not streamed and streamed: the parts joined = the whole answer at
// temperature 0, the last part done with the counters, eval_count =
// options.num_predict), load and unload by empty generate/chat, embed and
// embeddings (vectors of the model's width, the same for the same text),
// a ResponseError with status 404 and Ollama's message for an unknown
// model, abort() of a stream, format "json" and a JSON schema (the output
// parses and validates), and tools (a call in Ollama's shape, streamed and
// not, and the round trip with the tool's result).
import { Ollama } from 'ollama';
import { attempt, check, done, eq, port } from './common.mjs';

const ollama = new Ollama({ host: `http://127.0.0.1:${port}` });
const L = 'tiny-llama-q8_0', Q = 'tiny-qwen2-q8_0', B = 'tiny-bert-q8_0';

async function joined(stream, pick) {
  let text = '', last, parts = 0;
  for await (const part of stream) {
    parts++;
    last = part;
    text += pick(part);
  }
  return { text, last, parts };
}

function counters(what, r, n) {
  check(`${what}: done`, r && r.done === true, r);
  check(`${what}: eval_count = num_predict ${n}`, r && r.eval_count === n, r);
  check(`${what}: prompt_eval_count > 0`, r && r.prompt_eval_count > 0, r);
  check(`${what}: durations in ns`, r && [r.total_duration, r.load_duration, r.prompt_eval_duration, r.eval_duration]
    .every((d) => Number.isInteger(d) && d >= 0) && r.total_duration >= r.eval_duration, r);
}

// ---- list, show ----
const tags = await attempt('list', () => ollama.list());
if (tags) {
  eq('list: the three models', tags.models.map((m) => m.name).sort(), [`${B}:latest`, `${L}:latest`, `${Q}:latest`]);
  const q = tags.models.find((m) => m.name === `${Q}:latest`);
  check('list: details of qwen2', q && q.details.format === 'gguf' && q.details.family === 'qwen2' &&
    q.details.quantization_level === 'Q8_0' && q.size > 0, q);
}
const show = await attempt('show', () => ollama.show({ model: L }));
if (show) {
  check('show: details and model_info', show.details.family === 'llama' &&
    show.model_info['general.architecture'] === 'llama', show.details);
}

// ---- generate ----
const N = 8;
const opts = { temperature: 0, num_predict: N };
const g = await attempt('generate', () => ollama.generate({ model: L, prompt: 'Hello', options: opts }));
if (g) {
  check('generate: response is text', typeof g.response === 'string' && g.response.length > 0, g);
  eq('generate: model as named', g.model, L);
  counters('generate', g, N);
  check('generate: created_at is a date', !Number.isNaN(Date.parse(g.created_at)), g.created_at);
}
const gs = await attempt('generate stream', async () =>
  joined(await ollama.generate({ model: L, prompt: 'Hello', options: opts, stream: true }), (p) => p.response));
if (gs && g) {
  eq('generate stream: the parts joined = the whole answer', gs.text, g.response);
  check('generate stream: the text, then the last part', gs.parts >= 2, gs.parts);
  counters('generate stream: the last part', gs.last, N);
}

// ---- chat ----
const messages = [{ role: 'user', content: 'Why is the sky blue?' }];
const c = await attempt('chat', () => ollama.chat({ model: `${Q}:latest`, messages, options: opts }));
if (c) {
  check('chat: an assistant message', c.message && c.message.role === 'assistant' && c.message.content.length > 0, c);
  counters('chat', c, N);
  eq('chat: done_reason', c.done_reason, 'length');
}
const cs = await attempt('chat stream', async () =>
  joined(await ollama.chat({ model: `${Q}:latest`, messages, options: opts, stream: true }), (p) => p.message.content));
if (cs && c) {
  eq('chat stream: the parts joined = the whole answer', cs.text, c.message.content);
  counters('chat stream: the last part', cs.last, N);
}

// ---- load, ps, unload ----
const load = await attempt('load by empty generate', () => ollama.generate({ model: Q, prompt: '', keep_alive: '5m' }));
if (load) eq('load: done_reason', load.done_reason, 'load');
const ps = await attempt('ps', () => ollama.ps());
if (ps) {
  const m = ps.models.find((x) => x.name === `${Q}:latest`);
  check('ps: the loaded model with expires_at and size_vram', m && !Number.isNaN(Date.parse(m.expires_at)) &&
    m.size_vram === 0 && m.size > 0, ps);
}
const unload = await attempt('unload by empty chat', () => ollama.chat({ model: Q, messages: [], keep_alive: 0 }));
if (unload) eq('unload: done_reason', unload.done_reason, 'unload');
const ps2 = await attempt('ps after unload', () => ollama.ps());
if (ps2) check('ps: unloaded model gone', !ps2.models.some((x) => x.name === `${Q}:latest`), ps2);

// ---- embed, embeddings ----
const e = await attempt('embed', () => ollama.embed({ model: B, input: ['hello world', 'another text'] }));
if (e) {
  check('embed: two vectors of the same width', e.embeddings.length === 2 && e.embeddings[0].length > 8 &&
    e.embeddings[0].length === e.embeddings[1].length, e.embeddings.map((v) => v.length));
  check('embed: prompt_eval_count', e.prompt_eval_count > 0, e);
}
const e1 = await attempt('embeddings', () => ollama.embeddings({ model: B, prompt: 'hello world' }));
if (e1 && e) eq('embeddings: the same vector as embed', e1.embedding, e.embeddings[0]);

// ---- errors ----
try {
  await ollama.chat({ model: 'nope', messages });
  check('chat with an unknown model throws', false);
} catch (err) {
  check('unknown model: ResponseError 404', err.name === 'ResponseError' && err.status_code === 404, err);
  eq('unknown model: Ollama\'s message', err.error, "model 'nope' not found");
}

// ---- abort a stream ----
await attempt('abort', async () => {
  const s = await ollama.generate({ model: L, prompt: 'x', stream: true, options: { num_predict: 1500 } });
  let n = 0;
  try {
    for await (const part of s) {
      if (++n === 2) s.abort();
      if (part.done) break;
    }
    check('abort: the stream ends with an AbortError', false, n);
  } catch (err) {
    eq('abort: AbortError', err.name, 'AbortError');
  }
});
const after = await attempt('generate after the abort', () => ollama.generate({ model: L, prompt: 'x', options: { num_predict: 2 } }));
if (after) eq('the server answers after the abort', after.eval_count, 2);

// ---- format ----
// format "json": tiny-llama's answers to this prompt close their object
// (checked: they parse); tiny-qwen2's random weights write one endless
// string, so its answer is only checked to begin as the grammar wants.
const parsesAsObject = (t) => { try { const v = JSON.parse(t); return v !== null && typeof v === 'object' && !Array.isArray(v); } catch { return false; } };
for (const seed of [1, 2]) {
  const f = await attempt(`format json generate seed ${seed}`, () =>
    ollama.generate({ model: L, prompt: 'Reply in JSON', format: 'json', options: { seed } }));
  if (f) check(`format json generate seed ${seed}: stops and parses as an object`, f.done_reason === 'stop' && parsesAsObject(f.response), f.response);
  const fc = await attempt(`format json chat stream seed ${seed}`, async () =>
    joined(await ollama.chat({ model: L, messages: [{ role: 'user', content: 'Reply in JSON' }], format: 'json', stream: true, options: { seed } }),
      (p) => p.message.content));
  if (fc) check(`format json chat stream seed ${seed}: the joined text parses as an object`, parsesAsObject(fc.text), fc.text);
}
const fq = await attempt('format json on qwen2', () =>
  ollama.generate({ model: Q, prompt: 'Reply in JSON', format: 'json', options: { seed: 1, num_predict: 30 } }));
if (fq) check('format json on qwen2: the answer begins as a JSON object', /^\{\s*("|\})/.test(fq.response), fq.response);

// format: a JSON schema (every answer parses and validates)
const schema = { type: 'object', properties: { age: { type: 'integer' }, ok: { type: 'boolean' },
  name: { type: 'string', maxLength: 12 } }, required: ['age', 'ok', 'name'] };
const validates = (t) => {
  try {
    const v = JSON.parse(t);
    return Number.isInteger(v.age) && typeof v.ok === 'boolean' && typeof v.name === 'string' && v.name.length <= 12;
  } catch { return false; }
};
for (const model of [L, Q]) {
  for (const seed of [1, 2]) {
    const r = await attempt(`${model} format schema seed ${seed}`, () =>
      ollama.chat({ model, messages: [{ role: 'user', content: 'x' }], format: schema, options: { seed } }));
    if (r) check(`${model} format schema seed ${seed}: parses and validates`, validates(r.message.content), r.message.content);
  }
}

// tools: a call in Ollama's shape (the tiny model is made to write the
// Hermes call by a grammar, llama-server's field, read from options)
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const grammar = 'root ::= "<tool_call>\\n{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Paris\\"}}\\n</tool_call>"';
const tc = await attempt('chat with tools', () =>
  ollama.chat({ model: Q, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, options: { grammar } }));
if (tc) eq('chat with tools: message.tool_calls', tc.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
const tcs = await attempt('chat with tools, streamed', async () => {
  const calls = [];
  for await (const part of await ollama.chat({ model: Q, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools,
    options: { grammar }, stream: true })) {
    if (part.message.tool_calls) calls.push(...part.message.tool_calls);
  }
  return calls;
});
if (tcs) eq('chat with tools, streamed: the call', tcs, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
if (tc) {
  const next = await attempt('chat with the tool result', () => ollama.chat({ model: Q, tools, options: { num_predict: 2 },
    messages: [{ role: 'user', content: 'Weather in Paris?' }, tc.message, { role: 'tool', content: 'sunny' }] }));
  if (next) check('the tool result round trip answers', next.done === true && next.eval_count === 2, next);
}

done();
