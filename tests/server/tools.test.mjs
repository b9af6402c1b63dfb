// tools.test.mjs — tool calls through the official `openai` npm package, as
// an application uses them.  Started by tools.sh with PORT (a running
// `frugal serve` whose models include tiny-qwen2-q8_0, tiny-llama-q8_0 and
// tiny-llama3, tiny-llama-q8_0 with chat_template = llama3).
//
// Per model: tool_choice "required" gives message.tool_calls whose
// arguments JSON.parse and validate against the tool's schema, with
// finish_reason tool_calls and content null; the round trip (the
// assistant message as the client returned it, then a tool message with
// the result) is accepted and answered; a stream read with the client's
// own helper (chat.completions.stream → finalChatCompletion, which
// assembles the tool-call deltas) equals the non-streamed message but for
// the ids; a named function gives that function; "none" gives no calls;
// a bad tool_choice is the client's BadRequestError naming tool_choice.
import OpenAI from 'openai';
import { attempt, check, done, eq, port } from './common.mjs';

const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120_000 });

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', enum: ['Paris', 'Lyon'] }, days: { type: 'integer' } },
        required: ['city', 'days'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'get_time',
      description: 'The time in a zone',
      parameters: {
        type: 'object',
        properties: { zone: { type: 'string', maxLength: 8 } },
        required: ['zone'],
        additionalProperties: false,
      },
    },
  },
];

// The arguments of a call, validated against its tool's schema by hand.
function validCall(call) {
  if (!call || call.type !== 'function' || !/^call_[A-Za-z0-9]{24}$/.test(call.id)) return false;
  let a;
  try {
    a = JSON.parse(call.function.arguments);
  } catch {
    return false;
  }
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return false;
  const keys = Object.keys(a).sort().join(',');
  if (call.function.name === 'get_weather')
    return keys === 'city,days' && ['Paris', 'Lyon'].includes(a.city) && Number.isInteger(a.days);
  if (call.function.name === 'get_time')
    return keys === 'zone' && typeof a.zone === 'string' && [...a.zone].length <= 8;
  return false;
}

const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
const shape = (calls) => (calls || []).map((c) => ({ name: c.function.name, arguments: c.function.arguments }));

async function suite(model) {
  const base = { model, messages, tools, max_tokens: 160, seed: 1 };
  const r = await attempt(`${model} required`, () => client.chat.completions.create({ ...base, tool_choice: 'required' }));
  if (!r) return;
  const m = r.choices[0].message;
  eq(`${model} required: finish_reason`, r.choices[0].finish_reason, 'tool_calls');
  eq(`${model} required: content`, m.content, null);
  check(`${model} required: calls parse and validate`, Array.isArray(m.tool_calls) && m.tool_calls.length >= 1 &&
    m.tool_calls.every(validCall), m.tool_calls);

  // the round trip, as an application writes it
  const next = [...messages, m, ...m.tool_calls.map((c) => ({ role: 'tool', tool_call_id: c.id,
    content: JSON.stringify({ temperature: 21, sky: 'clear' }) }))];
  const r2 = await attempt(`${model} round trip`, () => client.chat.completions.create({ model, messages: next, tools,
    max_tokens: 8, seed: 2 }));
  if (r2) check(`${model} round trip: answered`, r2.object === 'chat.completion' && r2.choices.length === 1 &&
    ['stop', 'length', 'tool_calls'].includes(r2.choices[0].finish_reason), r2.choices[0]);
  const r3 = await attempt(`${model} round trip, required`, () => client.chat.completions.create({ model, messages: next,
    tools, tool_choice: 'required', max_tokens: 160, seed: 3 }));
  if (r3) check(`${model} round trip, required: valid calls`, (r3.choices[0].message.tool_calls || []).length >= 1 &&
    r3.choices[0].message.tool_calls.every(validCall), r3.choices[0].message);

  // streamed, assembled by the client's own helper
  const final = await attempt(`${model} stream`, async () => {
    const s = client.chat.completions.stream({ ...base, tool_choice: 'required' });
    return s.finalChatCompletion();
  });
  if (final) {
    const fm = final.choices[0].message;
    eq(`${model} stream: assembled calls = non-streamed`, shape(fm.tool_calls), shape(m.tool_calls));
    eq(`${model} stream: finish_reason`, final.choices[0].finish_reason, 'tool_calls');
    check(`${model} stream: no content`, fm.content === null || fm.content === '', fm.content);
    check(`${model} stream: ids`, (fm.tool_calls || []).every(validCall), fm.tool_calls);
  }
  // the raw chunks: the id and name come first, then the arguments
  const chunks = await attempt(`${model} raw stream`, async () => {
    const out = [];
    for await (const c of await client.chat.completions.create({ ...base, tool_choice: 'required', stream: true })) out.push(c);
    return out;
  });
  if (chunks) {
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls || []);
    const first = deltas.filter((d) => d.id);
    check(`${model} raw stream: each call opens with id, type, name and empty arguments`, first.length >= 1 &&
      first.every((d, i) => d.index === i && d.type === 'function' && d.function.name && d.function.arguments === ''), first);
    check(`${model} raw stream: then argument deltas`, deltas.some((d) => !d.id && d.function?.arguments), deltas);
    eq(`${model} raw stream: the first chunk's role`, chunks[0].choices[0].delta.role, 'assistant');
  }

  // a named function
  const n = await attempt(`${model} named`, () => client.chat.completions.create({ ...base, seed: 4,
    tool_choice: { type: 'function', function: { name: 'get_time' } }, parallel_tool_calls: false }));
  if (n) {
    const calls = n.choices[0].message.tool_calls || [];
    check(`${model} named: one get_time call`, calls.length === 1 && calls[0].function.name === 'get_time' &&
      validCall(calls[0]), calls);
  }
  // none
  const z = await attempt(`${model} none`, () => client.chat.completions.create({ ...base, max_tokens: 4,
    tool_choice: 'none' }));
  if (z) check(`${model} none: no calls`, !z.choices[0].message.tool_calls && z.choices[0].finish_reason !== 'tool_calls',
    z.choices[0]);
}

for (const model of ['tiny-qwen2-q8_0', 'tiny-llama-q8_0', 'tiny-llama3']) await suite(model);

try {
  await client.chat.completions.create({ model: 'tiny-qwen2-q8_0', messages, tools, tool_choice: 'sometimes' });
  check('a bad tool_choice is refused', false);
} catch (e) {
  check('a bad tool_choice: BadRequestError', e instanceof OpenAI.BadRequestError, e && e.constructor.name);
  eq('a bad tool_choice: param', e.param, 'tool_choice');
}
done();
