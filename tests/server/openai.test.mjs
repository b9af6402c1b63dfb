// openai.test.mjs — frugal through the official `openai` npm package, as
// an application would use it.  Started by openai.sh with PORT (a running
// `frugal serve --models DIR`), FRUGAL_BIN and MODELS_DIR (the fixture
// files, named ID.gguf).
//
// For tiny-llama-q8_0 and tiny-qwen2-q8_0, text and chat completions, at
// temperature 0: the non-streamed text, the streamed deltas joined and
// `frugal run ... --temp 0 [--chat]` are the same text; finish_reason,
// usage (prompt_tokens as `frugal tokenize --add-special` counts),
// stream_options.include_usage, a stop string from the middle of the known
// answer, seeds at temperature 0.8, chat logprobs, and the client's
// NotFoundError for an unknown model.
import OpenAI from 'openai';
import { attempt, check, done, eq, frugalRun, frugalTokenize, port, stopFrom } from './common.mjs';

const MODELS_DIR = process.env.MODELS_DIR;
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 });
const N = 32;
// prompts whose tiny-llama answers contain byte tokens (invalid UTF-8 on
// their own), so that the U+FFFD replacement is compared too
const TEXT_PROMPT = 'The quick brown fox';
const CHAT_PROMPT = '日本語のテキスト';

async function collectStream(stream) {
  const out = { text: '', finishes: [], usageChunks: [], chunks: 0, roles: [], emptyChoiceChunks: 0, lastUsageIsLast: false };
  let last;
  for await (const chunk of stream) {
    out.chunks++;
    last = chunk;
    if (chunk.usage) out.usageChunks.push(chunk);
    if (!chunk.choices || chunk.choices.length === 0) out.emptyChoiceChunks++;
    for (const c of chunk.choices || []) {
      if (c.delta) {
        if (c.delta.role) out.roles.push(c.delta.role);
        if (typeof c.delta.content === 'string') out.text += c.delta.content;
      } else if (typeof c.text === 'string') out.text += c.text;
      if (c.finish_reason) out.finishes.push(c.finish_reason);
    }
  }
  out.lastUsageIsLast = !!(last && last.usage && last.choices.length === 0);
  return out;
}

async function suite(model) {
  const file = `${MODELS_DIR}/${model}.gguf`;

  // ---- text completions ----
  const ref = frugalRun(file, TEXT_PROMPT, N);
  if (model === 'tiny-llama-q8_0') check(`${model}: the reference answer has invalid UTF-8 (U+FFFD), as this test wants`, ref.text.includes('\uFFFD'), ref.text);
  const ids = frugalTokenize(file, TEXT_PROMPT);
  const wantFinish = ref.nGen === N ? 'length' : 'stop';
  check(`${model}: frugal run gave some text`, ref.text.length > 0, ref);
  const plain = await attempt(`${model} completions.create`, () =>
    client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0 }));
  if (plain) {
    eq(`${model} completion: object`, plain.object, 'text_completion');
    eq(`${model} completion: one choice`, plain.choices.length, 1);
    eq(`${model} completion text = frugal run`, plain.choices[0].text, ref.text);
    eq(`${model} completion finish_reason`, plain.choices[0].finish_reason, wantFinish);
    eq(`${model} completion usage.prompt_tokens = frugal tokenize --add-special`, plain.usage.prompt_tokens, ids.length);
    eq(`${model} completion usage.prompt_tokens = frugal run's prompt`, plain.usage.prompt_tokens, ref.nPrompt);
    eq(`${model} completion usage.completion_tokens`, plain.usage.completion_tokens, ref.nGen);
    if (wantFinish === 'length') eq(`${model} completion: completion_tokens = max_tokens at 'length'`, plain.usage.completion_tokens, N);
    eq(`${model} completion usage.total_tokens`, plain.usage.total_tokens, plain.usage.prompt_tokens + plain.usage.completion_tokens);
    eq(`${model} completion model echoed`, plain.model, model);
  }
  const st = await attempt(`${model} completions stream`, async () =>
    collectStream(await client.completions.create({
      model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true },
    })));
  if (st) {
    eq(`${model} streamed completion text = frugal run`, st.text, ref.text);
    eq(`${model} streamed completion: one finish_reason`, st.finishes, [wantFinish]);
    eq(`${model} streamed completion: one usage chunk`, st.usageChunks.length, 1);
    check(`${model} streamed completion: the usage chunk is last, with empty choices`, st.lastUsageIsLast);
    if (st.usageChunks[0]) {
      eq(`${model} streamed completion usage`, st.usageChunks[0].usage,
        { prompt_tokens: ids.length, completion_tokens: ref.nGen, total_tokens: ids.length + ref.nGen });
    }
  }
  const st2 = await attempt(`${model} completions stream without usage`, async () =>
    collectStream(await client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0, stream: true })));
  if (st2) {
    eq(`${model} stream without include_usage: same text`, st2.text, ref.text);
    eq(`${model} stream without include_usage: no usage chunk`, st2.usageChunks.length, 0);
    eq(`${model} stream without include_usage: no empty-choices chunk`, st2.emptyChoiceChunks, 0);
  }

  // a stop string from the middle of the known answer
  const s = stopFrom(ref.text);
  if (check(`${model}: a stop string can be taken from the answer`, s, ref.text)) {
    const want = ref.text.slice(0, s.at);
    const r = await attempt(`${model} completion with stop`, () =>
      client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0, stop: s.stop }));
    if (r) {
      eq(`${model} completion with stop ${JSON.stringify(s.stop)}: text ends right before it`, r.choices[0].text, want);
      eq(`${model} completion with stop: finish_reason`, r.choices[0].finish_reason, 'stop');
      check(`${model} completion with stop: fewer tokens than max_tokens`, r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= N, r.usage);
    }
    const rs = await attempt(`${model} streamed completion with stop`, async () =>
      collectStream(await client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0, stop: [s.stop, 'never-in-this-text'], stream: true })));
    if (rs) {
      eq(`${model} streamed completion with stop: text ends right before it`, rs.text, want);
      eq(`${model} streamed completion with stop: finish_reason`, rs.finishes, ['stop']);
    }
  }

  // seeds at temperature 0.8
  const seeded = async (seed) => (await client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0.8, seed })).choices[0].text;
  const a = await attempt(`${model} seeded completion`, () => seeded(42));
  const b = await attempt(`${model} seeded completion again`, () => seeded(42));
  if (a !== undefined && b !== undefined) eq(`${model}: same seed, temperature 0.8: same text`, b, a);
  const sa = await attempt(`${model} seeded stream`, async () =>
    collectStream(await client.completions.create({ model, prompt: TEXT_PROMPT, max_tokens: N, temperature: 0.8, seed: 42, stream: true })));
  if (sa && a !== undefined) eq(`${model}: same seed streamed: same text`, sa.text, a);

  // ---- chat completions ----
  const cref = frugalRun(file, CHAT_PROMPT, N, { chat: true });
  const cFinish = cref.nGen === N ? 'length' : 'stop';
  if (model === 'tiny-llama-q8_0') check(`${model}: the reference chat answer has invalid UTF-8 (U+FFFD), as this test wants`, cref.text.includes('\uFFFD'), cref.text);
  const messages = [{ role: 'user', content: CHAT_PROMPT }];
  const chat = await attempt(`${model} chat.completions.create`, () =>
    client.chat.completions.create({ model, messages, max_tokens: N, temperature: 0 }));
  if (chat) {
    eq(`${model} chat: object`, chat.object, 'chat.completion');
    eq(`${model} chat: role`, chat.choices[0].message.role, 'assistant');
    eq(`${model} chat text = frugal run --chat`, chat.choices[0].message.content, cref.text);
    eq(`${model} chat finish_reason`, chat.choices[0].finish_reason, cFinish);
    eq(`${model} chat usage.prompt_tokens = frugal run --chat's prompt`, chat.usage.prompt_tokens, cref.nPrompt);
    eq(`${model} chat usage.completion_tokens`, chat.usage.completion_tokens, cref.nGen);
    if (cFinish === 'length') eq(`${model} chat: completion_tokens = max_tokens at 'length'`, chat.usage.completion_tokens, N);
    eq(`${model} chat usage.total_tokens`, chat.usage.total_tokens, cref.nPrompt + cref.nGen);
  }
  const cst = await attempt(`${model} chat stream`, async () =>
    collectStream(await client.chat.completions.create({
      model, messages, max_tokens: N, temperature: 0, stream: true, stream_options: { include_usage: true },
    })));
  if (cst) {
    eq(`${model} streamed chat text = frugal run --chat`, cst.text, cref.text);
    eq(`${model} streamed chat: the role comes once, first`, cst.roles, ['assistant']);
    eq(`${model} streamed chat: one finish_reason`, cst.finishes, [cFinish]);
    eq(`${model} streamed chat: one usage chunk`, cst.usageChunks.length, 1);
    check(`${model} streamed chat: the usage chunk is last, with empty choices`, cst.lastUsageIsLast);
    if (cst.usageChunks[0]) {
      eq(`${model} streamed chat usage`, cst.usageChunks[0].usage,
        { prompt_tokens: cref.nPrompt, completion_tokens: cref.nGen, total_tokens: cref.nPrompt + cref.nGen });
    }
  }
  const cs = stopFrom(cref.text);
  if (check(`${model}: a stop string can be taken from the chat answer`, cs, cref.text)) {
    const r = await attempt(`${model} chat with stop`, () =>
      client.chat.completions.create({ model, messages, max_tokens: N, temperature: 0, stop: [cs.stop] }));
    if (r) {
      eq(`${model} chat with stop ${JSON.stringify(cs.stop)}: text ends right before it`, r.choices[0].message.content, cref.text.slice(0, cs.at));
      eq(`${model} chat with stop: finish_reason`, r.choices[0].finish_reason, 'stop');
    }
  }
  const ca = await attempt(`${model} seeded chat`, async () =>
    (await client.chat.completions.create({ model, messages, max_tokens: N, temperature: 0.8, seed: 7 })).choices[0].message.content);
  const cb = await attempt(`${model} seeded chat again`, async () =>
    (await client.chat.completions.create({ model, messages, max_tokens: N, temperature: 0.8, seed: 7 })).choices[0].message.content);
  if (ca !== undefined && cb !== undefined) eq(`${model}: same seed chat, temperature 0.8: same text`, cb, ca);

  // logprobs (chat): one entry per token, logprob <= 0, top_logprobs of the
  // asked length, best first; at temperature 0 the chosen token is the best
  const K = 3;
  const lp = await attempt(`${model} chat with logprobs`, () =>
    client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: K }));
  if (lp) {
    const content = lp.choices[0].logprobs && lp.choices[0].logprobs.content;
    if (check(`${model} logprobs.content is an array`, Array.isArray(content), lp.choices[0].logprobs)) {
      eq(`${model} logprobs: one entry per generated token`, content.length, lp.usage.completion_tokens);
      let shape = true, sorted = true, greedy = true, why = '';
      for (const [i, e] of content.entries()) {
        if (typeof e.token !== 'string' || typeof e.logprob !== 'number' || !(e.logprob <= 0) ||
            !Array.isArray(e.bytes) || !Array.isArray(e.top_logprobs) || e.top_logprobs.length !== K ||
            !e.top_logprobs.every((t) => typeof t.token === 'string' && typeof t.logprob === 'number' && t.logprob <= 0)) {
          shape = false; why = `entry ${i}: ${JSON.stringify(e)}`;
        }
        for (let k = 1; k < (e.top_logprobs || []).length; k++) if (e.top_logprobs[k].logprob > e.top_logprobs[k - 1].logprob) sorted = false;
        const top = (e.top_logprobs || [])[0];
        if (!top || Math.abs(top.logprob - e.logprob) > 1e-5) greedy = false;
      }
      check(`${model} logprobs entries: token, logprob <= 0, bytes, ${K} top_logprobs`, shape, why);
      check(`${model} top_logprobs best first`, sorted);
      check(`${model} logprobs at temperature 0: the chosen token has the best logprob`, greedy, JSON.stringify(content[0]));
      // the tokens' bytes joined are the message (a continuation keeps the
      // leading space of its first piece, as llama.cpp's server does)
      const joined = new TextDecoder().decode(Buffer.concat(content.map((e) => Buffer.from(e.bytes))));
      const msg = lp.choices[0].message.content;
      eq(`${model} logprobs bytes decode to the message`, joined, msg);
    }
  }
  const lps = await attempt(`${model} streamed chat with logprobs`, async () => {
    const stream = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2, stream: true });
    const entries = [];
    for await (const chunk of stream) for (const c of chunk.choices) if (c.logprobs && c.logprobs.content) entries.push(...c.logprobs.content);
    return entries;
  });
  if (lps && lp && lp.choices[0].logprobs) {
    eq(`${model} streamed logprobs: the same tokens`, lps.map((e) => e.token), lp.choices[0].logprobs.content.map((e) => e.token));
    check(`${model} streamed logprobs: 2 top_logprobs each`, lps.every((e) => e.top_logprobs.length === 2));
  }
}

async function errors() {
  for (const [what, call] of [
    ['chat', () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })],
    ['completion', () => client.completions.create({ model: 'no-such-model', prompt: 'hi', max_tokens: 2 })],
    ['streamed chat', async () => {
      const s = await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true });
      for await (const _ of s) { /* not reached */ }
    }],
  ]) {
    let err;
    try {
      await call();
    } catch (e) {
      err = e;
    }
    check(`unknown model (${what}): the client throws NotFoundError`, err instanceof OpenAI.NotFoundError, err && `${err.constructor.name}: ${err.message}`);
    if (err) {
      eq(`unknown model (${what}): status`, err.status, 404);
      check(`unknown model (${what}): the message names the model`, typeof err.message === 'string' && err.message.includes('no-such-model'), err.message);
      eq(`unknown model (${what}): error code`, err.code, 'model_not_found');
      eq(`unknown model (${what}): error param`, err.param, 'model');
    }
  }
  // a bad request surfaces as BadRequestError with the field named
  let err;
  try {
    await client.chat.completions.create({ model: 'tiny-llama-q8_0', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, n: 3 });
  } catch (e) {
    err = e;
  }
  // n beyond the model's slots (openai.sh: --parallel 2)
  check('n: 3 over 2 slots: the client throws BadRequestError', err instanceof OpenAI.BadRequestError, err && err.constructor.name);
  if (err) eq('n: 3: param is n', err.param, 'n');
}

async function models() {
  const list = await attempt('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return ids;
  });
  if (list) eq('models.list: the fixture ids', list.sort(), ['tiny-llama-q8_0', 'tiny-qwen2-q8_0']);
  const one = await attempt('models.retrieve', () => client.models.retrieve('tiny-llama-q8_0'));
  if (one) eq('models.retrieve: the entry', [one.id, one.object], ['tiny-llama-q8_0', 'model']);
}

try {
  await models();
  for (const m of ['tiny-llama-q8_0', 'tiny-qwen2-q8_0']) await suite(m);
  await errors();
} catch (e) {
  check('openai suite: unexpected exception', false, e && e.stack);
}
done();
