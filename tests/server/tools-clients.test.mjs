// tools-clients.test.mjs — a function-call round trip through Vercel's AI
// SDK (ai@6 with @ai-sdk/openai-compatible) and LangChain
// (@langchain/openai), as applications write them.  Started by tools.sh
// with PORT; the models are tiny-qwen2-q8_0 (chatml) and tiny-llama3
// (tiny-llama-q8_0 with chat_template = llama3).
//
// AI SDK: generateText with a zod tool, toolChoice "required" for the
// first step and "none" after (prepareStep), two steps: the first step's
// call is validated by the SDK against the zod schema and executed (its
// result is the tool's return value), the second request carries the
// assistant's call and the tool result and is answered; streamText the
// same way gives a valid call from the stream.  LangChain: bindTools with
// tool_choice "required" gives AIMessage.tool_calls with parsed args that
// the zod schema accepts; the tool's ToolMessage goes back and the model
// answers.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, stepCountIs, streamText, tool } from 'ai';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage } from '@langchain/core/messages';
import { tool as lcTool } from '@langchain/core/tools';
import { z } from 'zod';
import { attempt, check, done, eq, port } from './common.mjs';

const baseURL = `http://127.0.0.1:${port}/v1`;
const provider = createOpenAICompatible({ name: 'frugal', baseURL, apiKey: 'x' });
const weatherSchema = z.object({ city: z.enum(['Paris', 'Lyon']), days: z.number().int() });
const WEATHER = { temperature: 21, sky: 'clear' };

async function aiSdk(model) {
  const calls = [];
  const tools = {
    get_weather: tool({
      description: 'The weather in a city',
      inputSchema: weatherSchema,
      execute: async (input) => {
        calls.push(input);
        return WEATHER;
      },
    }),
  };
  const r = await attempt(`ai ${model} generateText`, () => generateText({
    model: provider(model), tools, prompt: 'What is the weather in Paris?', maxOutputTokens: 500, seed: 1,
    maxRetries: 0, stopWhen: stepCountIs(2),
    prepareStep: ({ stepNumber }) => ({ toolChoice: stepNumber === 0 ? 'required' : 'none' }),
  }));
  if (r) {
    eq(`ai ${model}: two steps`, r.steps.length, 2);
    const s0 = r.steps[0];
    eq(`ai ${model}: step 1 finishes with tool calls`, s0.finishReason, 'tool-calls');
    check(`ai ${model}: step 1 called get_weather with valid input`, s0.toolCalls.length >= 1 &&
      s0.toolCalls.every((c) => c.toolName === 'get_weather' && weatherSchema.safeParse(c.input).success), s0.toolCalls);
    check(`ai ${model}: the tool ran on that input`, calls.length === s0.toolCalls.length, calls);
    check(`ai ${model}: its result is in the step`, s0.toolResults.length === s0.toolCalls.length &&
      s0.toolResults.every((t) => JSON.stringify(t.output) === JSON.stringify(WEATHER)), s0.toolResults);
    const s1 = r.steps[1];
    check(`ai ${model}: step 2 (with the tool result) answered`, s1 && ['stop', 'length'].includes(s1.finishReason) &&
      s1.toolCalls.length === 0, s1 && s1.finishReason);
  }
  const st = await attempt(`ai ${model} streamText`, async () => {
    const res = streamText({
      model: provider(model), tools, prompt: 'And in Lyon?', maxOutputTokens: 500, seed: 2, maxRetries: 0,
      toolChoice: 'required', stopWhen: stepCountIs(1),
    });
    return { toolCalls: await res.toolCalls, finishReason: await res.finishReason };
  });
  if (st) {
    check(`ai ${model} stream: valid calls`, st.toolCalls.length >= 1 &&
      st.toolCalls.every((c) => c.toolName === 'get_weather' && weatherSchema.safeParse(c.input).success), st.toolCalls);
    eq(`ai ${model} stream: finish`, st.finishReason, 'tool-calls');
  }
}

async function langchain(model) {
  const llm = new ChatOpenAI({ model, apiKey: 'x', configuration: { baseURL }, maxTokens: 500, maxRetries: 0,
    modelKwargs: { seed: 3 } });
  const weather = lcTool(async () => JSON.stringify(WEATHER), {
    name: 'get_weather', description: 'The weather in a city', schema: weatherSchema,
  });
  const question = new HumanMessage('What is the weather in Paris?');
  const ai = await attempt(`langchain ${model} invoke`, () => llm.bindTools([weather], { tool_choice: 'required' })
    .invoke([question]));
  if (!ai) return;
  check(`langchain ${model}: tool_calls with parsed args the schema accepts`, ai.tool_calls.length >= 1 &&
    ai.tool_calls.every((c) => c.name === 'get_weather' && weatherSchema.safeParse(c.args).success && c.id),
  ai.tool_calls);
  const results = await attempt(`langchain ${model} tool`, () => Promise.all(ai.tool_calls.map((c) => weather.invoke(c))));
  if (!results) return;
  check(`langchain ${model}: ToolMessages for the calls`, results.every((m, i) => m.tool_call_id === ai.tool_calls[i].id &&
    m.content === JSON.stringify(WEATHER)), results);
  const ai2 = await attempt(`langchain ${model} round trip`, () => llm.bindTools([weather], { tool_choice: 'none' })
    .invoke([question, ai, ...results]));
  if (ai2) check(`langchain ${model}: answered after the tool result`, typeof ai2.content === 'string' &&
    ai2.tool_calls.length === 0, ai2);
}

for (const model of ['tiny-qwen2-q8_0', 'tiny-llama3']) {
  await aiSdk(model);
  await langchain(model);
}
done();
