// structured.test.mjs — structured output through the official `openai`
// npm client as applications use it: chat.completions.parse with
// zodResponseFormat (the client sends the zod schema as a strict
// json_schema, with OpenAPI's "nullable", and parses the reply with zod,
// throwing when it does not fit).  Started by structured.sh with PORT.
//
// For tiny-llama-q8_0 and tiny-qwen2-q8_0 (random weights), 20 replies
// each at temperature 1 with varied seeds: every one parses and passes
// zod, with finish_reason "stop"; a streamed one too.
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { attempt, check, done, port } from './common.mjs';

const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 });

const Item = z.object({ sku: z.enum(['A1', 'B2', 'C3']), qty: z.number().int(), price: z.number().nullable() });
const Order = z.object({
  status: z.enum(['new', 'paid', 'shipped']),
  items: z.array(Item).max(3),
  gift: z.boolean().nullable(),
  when: z.string().datetime({ offset: true }),
  customer: z.object({ vip: z.boolean(), tier: z.number().int().nullable() }),
});
const format = zodResponseFormat(Order, 'order');

for (const model of ['tiny-llama-q8_0', 'tiny-qwen2-q8_0']) {
  let good = 0;
  for (let i = 0; i < 20; i++) {
    const r = await attempt(`${model} parse #${i}`, () => client.chat.completions.parse({
      model, messages: [{ role: 'user', content: `An order, please (${i})` }],
      response_format: format, temperature: 1, seed: 7 * i + 1, max_tokens: 400 }));
    if (!r) continue;
    const c = r.choices[0];
    const ok = c.finish_reason === 'stop' && c.message.parsed !== null && Order.safeParse(c.message.parsed).success;
    check(`${model} parse #${i}: parsed and valid`, ok, c.message.content);
    if (ok) good++;
  }
  console.log(`${model}: ${good} of 20 replies parsed by the openai client and zod`);

  // streamed: the joined deltas parse too
  const stream = await attempt(`${model} stream`, () => client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'An order, streamed' }], response_format: format,
    temperature: 1, seed: 99, max_tokens: 400, stream: true }));
  if (stream) {
    let text = '', finish = null;
    for await (const chunk of stream)
      for (const c of chunk.choices || []) {
        if (typeof c.delta?.content === 'string') text += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
      }
    let parsed = null;
    try { parsed = Order.parse(JSON.parse(text)); } catch { parsed = null; }
    check(`${model} stream: the joined deltas parse and pass zod`, parsed !== null && finish === 'stop', text);
  }
}
done();
