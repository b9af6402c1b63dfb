// shapes.test.mjs — OpenAI's other request shapes through the clients
// (started by shapes.sh with PORT, a server on tiny-llama-q8_0 with
// --parallel 4):
//   - openai@6: completions.create with an array of 2 prompts (2 choices,
//     index 0 and 1, each the text of its prompt alone at temperature 0);
//     chat with n 3 and a seed (3 choices, ascending index, distinct
//     texts); a chat stream with n 2 reassembled per index (each the
//     non-streamed choice of the same seed); echo with logprobs (the prompt
//     first, a null first logprob); system_fingerprint on replies and every
//     chunk; n 5 over 4 slots and an over-long prompt as BadRequestError
//     (param n; code context_length_exceeded)
//   - @langchain/openai's OpenAI (completions): generate() with 2 prompts
//     (LangChain sends them as one request with a prompt array) gives 2
//     generations, each its prompt's text; streaming too; with n 2, 2
//     generations of 2 each; token usage summed in llmOutput
import OpenAI from 'openai';
import { OpenAI as LCOpenAI } from '@langchain/openai';
import { attempt, check, done, eq, port } from './common.mjs';

const model = 'tiny-llama-q8_0';
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ baseURL, apiKey: 'x', maxRetries: 0, timeout: 60_000 });
const P = ['The quick brown fox', 'Once upon a time'];
const FP = /^fp_[0-9a-f]{10}$/;

async function alone(prompt, extra = {}) {
  const r = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0, ...extra });
  return { text: r.choices[0].text, usage: r.usage };
}

async function openaiClient() {
  const single = [];
  for (const p of P) single.push(await attempt(`alone: ${p}`, () => alone(p)));
  const two = await attempt('completions with 2 prompts', () =>
    client.completions.create({ model, prompt: P, max_tokens: 8, temperature: 0 }));
  if (two && single[0] && single[1]) {
    eq('2 prompts: index 0, 1', two.choices.map((c) => c.index), [0, 1]);
    eq('2 prompts: each its own text', two.choices.map((c) => c.text), single.map((s) => s.text));
    eq('2 prompts: prompt tokens summed', two.usage.prompt_tokens, single[0].usage.prompt_tokens + single[1].usage.prompt_tokens);
    check('2 prompts: system_fingerprint', FP.test(two.system_fingerprint), two.system_fingerprint);
    check('2 prompts: a cmpl- id', /^cmpl-[A-Za-z0-9]{24}$/.test(two.id), two.id);
  }

  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const n3 = await attempt('chat n 3', () =>
    client.chat.completions.create({ model, messages, max_tokens: 10, seed: 11, n: 3 }));
  if (n3) {
    eq('chat n 3: index 0, 1, 2', n3.choices.map((c) => c.index), [0, 1, 2]);
    eq('chat n 3: three distinct texts', new Set(n3.choices.map((c) => c.message.content)).size, 3);
    check('chat n 3: system_fingerprint', FP.test(n3.system_fingerprint), n3.system_fingerprint);
  }

  const n2 = await attempt('chat n 2', () => client.chat.completions.create({ model, messages, max_tokens: 10, seed: 5, n: 2 }));
  const parts = await attempt('chat stream n 2', async () => {
    const stream = await client.chat.completions.create({ model, messages, max_tokens: 10, seed: 5, n: 2, stream: true });
    const out = { text: ['', ''], roles: [[], []], finishes: [[], []], fps: new Set(), order: [] };
    for await (const chunk of stream) {
      out.fps.add(chunk.system_fingerprint);
      for (const c of chunk.choices) {
        out.order.push(c.index);
        if (c.delta.role) out.roles[c.index].push(c.delta.role);
        if (c.delta.content) out.text[c.index] += c.delta.content;
        if (c.finish_reason) out.finishes[c.index].push(c.finish_reason);
      }
    }
    return out;
  });
  if (parts && n2) {
    eq('stream n 2: each index reassembled = the non-streamed choice', parts.text, n2.choices.map((c) => c.message.content));
    eq('stream n 2: one role per index', parts.roles, [['assistant'], ['assistant']]);
    eq('stream n 2: one finish per index', parts.finishes.map((f) => f.length), [1, 1]);
    check('stream n 2: every chunk has the fingerprint', parts.fps.size === 1 && FP.test([...parts.fps][0]), [...parts.fps]);
    check('stream n 2: both indexes interleave', parts.order.includes(0) && parts.order.includes(1), parts.order);
  }

  const echo = await attempt('echo with logprobs', () =>
    client.completions.create({ model, prompt: P[0], max_tokens: 4, temperature: 0, echo: true, logprobs: 1 }));
  if (echo && single[0]) {
    const c = echo.choices[0];
    check('echo: the text begins with the prompt', c.text.startsWith(P[0]), c.text);
    check('echo: then the completion', single[0].text.startsWith(c.text.slice(P[0].length)), c.text);
    eq('echo: the first token logprob is null', c.logprobs.token_logprobs[0], null);
    eq('echo: a logprob per prompt and generated token', c.logprobs.tokens.length, echo.usage.prompt_tokens + echo.usage.completion_tokens);
  }

  let err;
  try {
    await client.chat.completions.create({ model, messages, max_tokens: 2, n: 5 });
  } catch (e) {
    err = e;
  }
  check('n 5 over 4 slots: BadRequestError', err instanceof OpenAI.BadRequestError, err && err.constructor.name);
  if (err) eq('n 5: param n', err.param, 'n');
  err = undefined;
  try {
    await client.completions.create({ model, prompt: 'the lazy dog '.repeat(200), max_tokens: 2 });
  } catch (e) {
    err = e;
  }
  check('over-long prompt: BadRequestError (400)', err instanceof OpenAI.BadRequestError && err.status === 400, err && err.constructor.name);
  if (err) eq('over-long prompt: code', err.code, 'context_length_exceeded');
  return single;
}

async function langchain(single) {
  const llm = new LCOpenAI({ model, apiKey: 'x', temperature: 0, maxTokens: 8, maxRetries: 0, configuration: { baseURL } });
  const res = await attempt('LangChain OpenAI.generate 2 prompts', () => llm.generate(P));
  if (res) {
    eq('LangChain generate: 2 generations', res.generations.length, 2);
    if (single[0] && single[1]) eq('LangChain generate: each its prompt\'s text', res.generations.map((g) => g[0].text), single.map((s) => s.text));
    const u = res.llmOutput?.tokenUsage;
    if (single[0] && single[1]) eq('LangChain generate: prompt tokens summed', u?.promptTokens, single[0].usage.prompt_tokens + single[1].usage.prompt_tokens);
  }
  const sl = new LCOpenAI({ model, apiKey: 'x', temperature: 0, maxTokens: 8, maxRetries: 0, streaming: true, configuration: { baseURL } });
  const sres = await attempt('LangChain streaming generate 2 prompts', () => sl.generate(P));
  if (sres && single[0] && single[1]) eq('LangChain streaming generate: each its prompt\'s text', sres.generations.map((g) => g[0].text), single.map((s) => s.text));
  const nl = new LCOpenAI({ model, apiKey: 'x', temperature: 0.9, maxTokens: 6, maxRetries: 0, n: 2, configuration: { baseURL } });
  const nres = await attempt('LangChain generate 2 prompts × n 2', () => nl.generate(P));
  if (nres) eq('LangChain n 2: 2 generations of 2', nres.generations.map((g) => g.length), [2, 2]);
}

const single = await openaiClient();
await langchain(single || []);
done();
