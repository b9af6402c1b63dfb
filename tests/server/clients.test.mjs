// clients.test.mjs — frugal through the clients applications are built on,
// each used as its own documentation shows: the official `openai` package,
// Vercel's AI SDK (`ai` with `@ai-sdk/openai-compatible`) and LangChain
// (`@langchain/openai`).  Started by clients.sh with PORT (a running
// `frugal serve --models DIR` with tiny-qwen2-q8_0, tiny-llama-q8_0 and
// tiny-bert-q8_0).
//
// For each client: a chat answer, a streamed one (joined deltas equal the
// non-streamed text at temperature 0), a tool call round trip (the model is
// made to call a function with tool_choice "required"; the arguments
// parse and validate against the function's schema; the tool's result
// goes back in a `tool` message and the next turn is answered), structured
// output (100 generations, 5 schemas × 20 seeds at temperature 1, on the
// random-weight models: every one must parse and validate — the client
// validates with zod, and so does this file), and embeddings (the vectors
// equal /v1/embeddings' own).
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText, generateObject, embed, embedMany, tool, jsonSchema } from 'ai';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { z } from 'zod';
import { attempt, base, check, done, eq } from './common.mjs';

const CHAT = 'tiny-qwen2-q8_0';
const EMB = 'tiny-bert-q8_0';
const SEEDS = 20;
const MAX = 300;                          // tokens for one structured answer

// The five schemas (zod: the clients turn them into JSON Schema).  Strings
// are bounded: a random-weight model inside a string rarely picks the quote.
const SCHEMAS = {
  person: z.object({
    name: z.string().max(24),
    age: z.number().int(),
    email: z.string().max(24).nullable(),
  }),
  ticket: z.object({
    priority: z.enum(['low', 'medium', 'high']),
    open: z.boolean(),
    note: z.null(),
  }),
  tags: z.object({
    tags: z.array(z.string().max(12)).min(1).max(3),
    count: z.number(),
  }),
  order: z.object({
    id: z.number().int(),
    customer: z.object({ name: z.string().max(16), vip: z.boolean() }),
    items: z.array(z.object({ sku: z.string().max(8), qty: z.number().int() })).max(2),
  }),
  shape: z.object({
    shape: z.union([
      z.object({ kind: z.literal('circle'), r: z.number() }),
      z.object({ kind: z.literal('square'), side: z.number() }),
    ]),
  }),
};

const WEATHER = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 20 },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
  },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const weatherZ = z.object({ city: z.string().max(20), unit: z.enum(['celsius', 'fahrenheit']) }).strict();

function valid(what, schema, value) {
  const r = schema.safeParse(value);
  return check(what, r.success, r.success ? undefined : { value, issues: r.error.issues.slice(0, 3) });
}

async function rawEmbedding(input) {
  const r = await fetch(`${base}/v1/embeddings`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: EMB, input }),
  });
  return (await r.json()).data.map((d) => d.embedding);
}

function close(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > 1e-5) return false;
  return true;
}

// ---------------------------------------------------------------- openai
async function openaiClient() {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 });
  const ask = [{ role: 'user', content: 'Say hello' }];
  const one = await attempt('openai chat', () =>
    client.chat.completions.create({ model: CHAT, messages: ask, max_tokens: 16, temperature: 0 }));
  let streamed = '';
  await attempt('openai stream', async () => {
    const st = await client.chat.completions.create({ model: CHAT, messages: ask, max_tokens: 16, temperature: 0, stream: true });
    for await (const c of st) streamed += c.choices[0]?.delta?.content ?? '';
  });
  if (one) eq('openai: streamed text = the chat answer', streamed, one.choices[0].message.content);

  // tools: a call, then its result back
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER } }];
  const msgs = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const call = await attempt('openai tool call', () =>
    client.chat.completions.create({ model: CHAT, messages: msgs, tools, tool_choice: 'required', max_tokens: 128, temperature: 1, seed: 7 }));
  if (call) {
    const m = call.choices[0].message;
    eq('openai: finish_reason tool_calls', call.choices[0].finish_reason, 'tool_calls');
    check('openai: one tool call named get_weather', m.tool_calls?.length >= 1 && m.tool_calls[0].function.name === 'get_weather', m);
    if (m.tool_calls?.length) {
      let args; try { args = JSON.parse(m.tool_calls[0].function.arguments); } catch { args = undefined; }
      valid('openai: the arguments validate against the tool schema', weatherZ, args);
      const next = await attempt('openai tool round trip', () => client.chat.completions.create({
        model: CHAT, max_tokens: 16, temperature: 0, tools,
        messages: [...msgs, m, { role: 'tool', tool_call_id: m.tool_calls[0].id, content: '{"temp": 21}' }],
      }));
      if (next) check('openai: the turn after the tool result is answered', ['stop', 'length', 'tool_calls'].includes(next.choices[0].finish_reason), next.choices[0]);
    }
  }

  // structured output: response_format json_schema from zod
  let ok = 0;
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    for (let seed = 0; seed < SEEDS; seed++) {
      const r = await attempt(`openai structured ${name} seed ${seed}`, () => client.chat.completions.parse({
        model: CHAT, messages: [{ role: 'user', content: `Make a ${name}` }], max_tokens: MAX, temperature: 1, seed,
        response_format: zodResponseFormat(schema, name),
      }));
      if (r && valid(`openai structured ${name} seed ${seed}`, schema, r.choices[0].message.parsed)) ok++;
    }
  }
  eq('openai: structured outputs that validate', ok, 5 * SEEDS);

  // embeddings
  const texts = ['a first text', 'and a second one'];
  const e = await attempt('openai embeddings', () => client.embeddings.create({ model: EMB, input: texts }));
  const want = await rawEmbedding(texts);
  if (e) check('openai: embeddings equal /v1/embeddings', close(e.data[0].embedding, want[0]) && close(e.data[1].embedding, want[1]));
}

// ---------------------------------------------------------------- AI SDK
async function aiSdk() {
  const frugal = createOpenAICompatible({ name: 'frugal', baseURL: `${base}/v1`, apiKey: 'x', supportsStructuredOutputs: true, includeUsage: true });
  const model = frugal.chatModel(CHAT);
  const one = await attempt('ai generateText', () =>
    generateText({ model, prompt: 'Say hello', maxOutputTokens: 16, temperature: 0, maxRetries: 0 }));
  if (one) check('ai: generateText has text and usage', typeof one.text === 'string' && one.usage.outputTokens > 0, one.usage);
  let streamed = '';
  await attempt('ai streamText', async () => {
    const st = streamText({ model, prompt: 'Say hello', maxOutputTokens: 16, temperature: 0, maxRetries: 0, onError: ({ error }) => { throw error; } });
    for await (const t of st.textStream) streamed += t;
  });
  if (one) eq('ai: streamed text = generateText', streamed, one.text);

  // tools: the SDK runs the function and sends its result back (two steps)
  let ran;
  const r = await attempt('ai tool round trip', () => generateText({
    model, prompt: 'What is the weather in Paris?', maxRetries: 0, temperature: 1, seed: 3, maxOutputTokens: 128,
    tools: {
      get_weather: tool({
        description: 'The weather in a city',
        inputSchema: jsonSchema(WEATHER),
        execute: async (args) => { ran = args; return { temp: 21 }; },
      }),
    },
    toolChoice: 'required',
    stopWhen: ({ steps }) => steps.length >= 2,
    prepareStep: ({ stepNumber }) => (stepNumber > 0 ? { toolChoice: 'none' } : {}),
  }));
  if (r) {
    check('ai: the first step called get_weather', r.steps[0]?.toolCalls?.[0]?.toolName === 'get_weather', r.steps[0]?.toolCalls);
    valid('ai: the function ran with arguments that validate', weatherZ, ran);
    check('ai: a second step answered after the tool result', r.steps.length === 2 && r.steps[1].finishReason !== 'error', r.steps.map((s) => s.finishReason));
  }

  let ok = 0;
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    for (let seed = 0; seed < SEEDS; seed++) {
      const o = await attempt(`ai generateObject ${name} seed ${seed}`, () => generateObject({
        model, schema, schemaName: name, prompt: `Make a ${name}`, maxOutputTokens: MAX, temperature: 1, seed, maxRetries: 0,
      }));
      if (o && valid(`ai generateObject ${name} seed ${seed}`, schema, o.object)) ok++;
    }
  }
  eq('ai: structured outputs that validate', ok, 5 * SEEDS);

  const emodel = frugal.textEmbeddingModel(EMB);
  const e1 = await attempt('ai embed', () => embed({ model: emodel, value: 'a first text', maxRetries: 0 }));
  const em = await attempt('ai embedMany', () => embedMany({ model: emodel, values: ['a first text', 'and a second one'], maxRetries: 0 }));
  const want = await rawEmbedding(['a first text', 'and a second one']);
  if (e1) check('ai: embed equals /v1/embeddings', close(e1.embedding, want[0]));
  if (em) check('ai: embedMany equals /v1/embeddings', close(em.embeddings[0], want[0]) && close(em.embeddings[1], want[1]));
}

// ---------------------------------------------------------------- LangChain
async function langchain() {
  const cfg = { model: CHAT, apiKey: 'x', configuration: { baseURL: `${base}/v1` }, maxRetries: 0, temperature: 0, maxTokens: 16 };
  const llm = new ChatOpenAI(cfg);
  const one = await attempt('langchain invoke', () => llm.invoke('Say hello'));
  let streamed = '';
  await attempt('langchain stream', async () => {
    for await (const c of await llm.stream('Say hello')) streamed += typeof c.content === 'string' ? c.content : '';
  });
  if (one) eq('langchain: streamed text = invoke', streamed, one.content);

  const weather = { name: 'get_weather', description: 'The weather in a city', schema: weatherZ };
  const withTools = new ChatOpenAI({ ...cfg, temperature: 1, maxTokens: 128, modelKwargs: { seed: 5 } }).bindTools([weather], { tool_choice: 'required' });
  const q = new HumanMessage('What is the weather in Paris?');
  const ai = await attempt('langchain bindTools invoke', () => withTools.invoke([q]));
  if (ai) {
    check('langchain: a get_weather tool call', ai.tool_calls?.[0]?.name === 'get_weather', ai.tool_calls);
    if (ai.tool_calls?.length) {
      valid('langchain: its args validate', weatherZ, ai.tool_calls[0].args);
      const next = await attempt('langchain tool round trip', () =>
        llm.invoke([q, ai, new ToolMessage({ tool_call_id: ai.tool_calls[0].id, content: '{"temp": 21}' })]));
      if (next) check('langchain: the turn after the tool result is answered', typeof next.content === 'string', next);
    }
  }

  let ok = 0;
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    for (let seed = 0; seed < SEEDS; seed++) {
      const m = new ChatOpenAI({ ...cfg, temperature: 1, maxTokens: MAX, modelKwargs: { seed } })
        .withStructuredOutput(schema, { name, method: 'jsonSchema', strict: true });
      const o = await attempt(`langchain structured ${name} seed ${seed}`, () => m.invoke(`Make a ${name}`));
      if (o && valid(`langchain structured ${name} seed ${seed}`, schema, o)) ok++;
    }
  }
  eq('langchain: structured outputs that validate', ok, 5 * SEEDS);

  const emb = new OpenAIEmbeddings({ model: EMB, apiKey: 'x', configuration: { baseURL: `${base}/v1` }, maxRetries: 0 });
  const want = await rawEmbedding(['a first text', 'and a second one']);
  const v = await attempt('langchain embedQuery', () => emb.embedQuery('a first text'));
  const vs = await attempt('langchain embedDocuments', () => emb.embedDocuments(['a first text', 'and a second one']));
  if (v) check('langchain: embedQuery equals /v1/embeddings', close(v, want[0]));
  if (vs) check('langchain: embedDocuments equal /v1/embeddings', close(vs[0], want[0]) && close(vs[1], want[1]));
}

const only = process.env.CLIENTS ? process.env.CLIENTS.split(',') : ['openai', 'ai', 'langchain'];
if (only.includes('openai')) await openaiClient();
if (only.includes('ai')) await aiSdk();
if (only.includes('langchain')) await langchain();
done();
