// embed.test.mjs — embeddings and reranking through HTTP, checked against
// llama.cpp's references.  Started by embed.sh with PORT (a running
// `frugal serve` on tiny-bert-f16, tiny-bert-q8_0, tiny-bert-rerank-q8_0
// with --embed-cache 0, so every vector is computed) and REFS (the
// testdata refs folder).
//
//   1. The official `openai` client on /v1/embeddings for tiny-bert-f16 and
//      tiny-bert-q8_0, every text of refs/MODEL.json in one batch: as
//      float, as base64 (the client hands back the string; decoded here as
//      little-endian float32), and with no encoding_format (the client asks
//      for base64 and decodes it itself); then a single string and the
//      reference token ids.  Each vector: cosine >= 0.999 with llama.cpp's
//      (printed), L2 norm 1 within 1e-4, the reference's dimension, data in
//      input order (index i); usage.prompt_tokens = the sum of the
//      reference token counts; the decoded base64 equals the float reply.
//   2. /v1/rerank (fetch) on tiny-bert-rerank-q8_0 for each reference case:
//      every relevance_score (Jina's and Cohere's: the sigmoid of the
//      classifier's logit) within 0.075 of the sigmoid of llama.cpp's
//      score for that document — the logits within 0.3, as the sigmoid's
//      slope is at most 1/4 (the diff is printed) — results in descending order and in
//      the order the reference scores give, top_n and return_documents
//      honoured; /rerank answers the same.
//   3. 64 concurrent single-text requests (distinct texts) give the vectors
//      of the same texts sent one by one (cosine >= 0.99999) in fewer
//      forward passes than requests (frugal_forward_passes_total{model}
//      before and after the burst; the delta is printed).
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';
import { attempt, base, check, done, eq, port } from './common.mjs';

const REFS = process.env.REFS;
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 });

const ref = (name) => JSON.parse(readFileSync(`${REFS}/${name}.json`, 'utf8'));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const norm = (a) => Math.sqrt(dot(a, a));
const cosine = (a, b) => dot(a, b) / (norm(a) * norm(b));
const sum = (xs) => xs.reduce((s, x) => s + x, 0);

// base64 → float32 little-endian, as the OpenAI API encodes it
function fromBase64(s) {
  const buf = Buffer.from(s, 'base64');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  for (let i = 0; i + 4 <= buf.byteLength; i += 4) out.push(dv.getFloat32(i, true));
  return { values: out, bytes: buf.byteLength };
}

// Check one embeddings reply against the reference cases (in order).
function checkVectors(what, res, cases, vectors) {
  eq(`${what}: object`, res.object, 'list');
  eq(`${what}: one item per input`, res.data.length, cases.length);
  eq(`${what}: indexes in input order`, res.data.map((d) => d.index), cases.map((_, i) => i));
  check(`${what}: every item is an embedding`, res.data.every((d) => d.object === 'embedding'));
  eq(`${what}: usage.prompt_tokens = the reference token counts`, res.usage.prompt_tokens, sum(cases.map((c) => c.tokens.length)));
  eq(`${what}: usage.total_tokens`, res.usage.total_tokens, res.usage.prompt_tokens);
  const cos = [];
  vectors.forEach((v, i) => {
    const want = cases[i].embedding;
    eq(`${what} [${i}]: dimension`, v.length, want.length);
    check(`${what} [${i}]: L2 norm 1 within 1e-4`, Math.abs(norm(v) - 1) <= 1e-4, norm(v));
    const c = cosine(v, want);
    cos.push(c.toFixed(8));
    check(`${what} [${i}] ${JSON.stringify(cases[i].text)}: cosine ${c} >= 0.999`, c >= 0.999);
  });
  console.log(`${what}: cosines ${cos.join(' ')}`);
}

async function embeddings(model) {
  const r = ref(model);
  const cases = r.cases;
  const texts = cases.map((c) => c.text);
  const fl = await attempt(`${model} float`, () =>
    client.embeddings.create({ model, input: texts, encoding_format: 'float' }));
  if (fl) {
    eq(`${model} float: model echoed`, fl.model, model);
    check(`${model} float: vectors are arrays of numbers`, fl.data.every((d) => Array.isArray(d.embedding) && typeof d.embedding[0] === 'number'));
    checkVectors(`${model} float`, fl, cases, fl.data.map((d) => d.embedding));
  }
  const b64 = await attempt(`${model} base64`, () =>
    client.embeddings.create({ model, input: texts, encoding_format: 'base64' }));
  if (b64) {
    check(`${model} base64: the client returns the strings`, b64.data.every((d) => typeof d.embedding === 'string'), typeof b64.data[0]?.embedding);
    const dec = b64.data.map((d) => fromBase64(String(d.embedding)));
    dec.forEach((d, i) => eq(`${model} base64 [${i}]: 4 bytes per dimension`, d.bytes, 4 * cases[i].embedding.length));
    checkVectors(`${model} base64`, b64, cases, dec.map((d) => d.values));
    if (fl) {
      dec.forEach((d, i) => {
        const f = fl.data[i].embedding.map(Math.fround);
        const maxd = Math.max(...d.values.map((x, k) => Math.abs(x - f[k])));
        check(`${model} [${i}]: base64 = float (max diff ${maxd})`, maxd <= 1e-6 && cosine(d.values, f) >= 0.99999);
      });
    }
  }
  // no encoding_format: the client asks for base64 and decodes it
  const dflt = await attempt(`${model} default`, () => client.embeddings.create({ model, input: texts }));
  if (dflt) {
    check(`${model} default: the client decoded arrays`, dflt.data.every((d) => Array.isArray(d.embedding)));
    checkVectors(`${model} default (client-decoded base64)`, dflt, cases, dflt.data.map((d) => Array.from(d.embedding)));
  }
  const one = await attempt(`${model} one string`, () =>
    client.embeddings.create({ model, input: texts[1], encoding_format: 'float' }));
  if (one) checkVectors(`${model} one string`, one, [cases[1]], one.data.map((d) => d.embedding));
  const ids = await attempt(`${model} token ids`, () =>
    client.embeddings.create({ model, input: cases.map((c) => c.tokens), encoding_format: 'float' }));
  if (ids) checkVectors(`${model} token ids`, ids, cases, ids.data.map((d) => d.embedding));
}

async function postJson(path, body) {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = { text }; }
  return { status: res.status, json };
}

async function rerank() {
  const model = 'tiny-bert-rerank-q8_0';
  const r = ref(model);
  for (const [ci, c] of r.cases.entries()) {
    const what = `${model} case ${ci}`;
    const want = c.scores.map((s, i) => i).sort((a, b) => c.scores[b] - c.scores[a]);
    const full = await attempt(`${what} /v1/rerank`, () => postJson('/v1/rerank', { model, query: c.query, documents: c.documents }));
    if (!full) continue;
    eq(`${what}: status`, full.status, 200);
    const res = full.json.results || [];
    eq(`${what}: one result per document`, res.length, c.documents.length);
    eq(`${what}: model echoed`, full.json.model, model);
    check(`${what}: usage.prompt_tokens > 0`, full.json.usage && full.json.usage.prompt_tokens > 0, full.json.usage);
    const diffs = [];
    for (const x of res) {
      const sig = 1 / (1 + Math.exp(-c.scores[x.index]));
      const d = x.relevance_score - sig;
      diffs.push(`doc ${x.index}: ${x.relevance_score.toFixed(4)} vs sigmoid(${c.scores[x.index]}) = ${sig.toFixed(4)} (${d >= 0 ? '+' : ''}${d.toFixed(4)})`);
      check(`${what} doc ${x.index}: score ${x.relevance_score} within 0.075 of ${sig}`, Math.abs(d) <= 0.075);
      check(`${what} doc ${x.index}: no document unless asked`, !('document' in x));
    }
    console.log(`${what}: ${diffs.join('; ')}`);
    check(`${what}: descending scores`, res.every((x, i) => i === 0 || res[i - 1].relevance_score >= x.relevance_score), res);
    eq(`${what}: the reference's order of documents`, res.map((x) => x.index), want);

    const top = await attempt(`${what} top_n`, () =>
      postJson('/v1/rerank', { model, query: c.query, documents: c.documents, top_n: 1, return_documents: true }));
    if (top) {
      eq(`${what} top_n 1: status`, top.status, 200);
      eq(`${what} top_n 1: one result, the best`, (top.json.results || []).map((x) => x.index), want.slice(0, 1));
      eq(`${what} return_documents: the text`, top.json.results?.[0]?.document, { text: c.documents[want[0]] });
    }
    const big = await attempt(`${what} top_n over`, () =>
      postJson('/v1/rerank', { model, query: c.query, documents: c.documents, top_n: 100 }));
    if (big) eq(`${what} top_n 100: every document`, (big.json.results || []).map((x) => x.index), want);

    const alias = await attempt(`${what} /rerank`, () =>
      postJson('/rerank', { model, query: c.query, documents: c.documents, return_documents: true }));
    if (alias) {
      eq(`${what} /rerank: status`, alias.status, 200);
      const ar = alias.json.results || [];
      eq(`${what} /rerank: the same order`, ar.map((x) => x.index), res.map((x) => x.index));
      check(`${what} /rerank: the same scores`, ar.length === res.length && ar.every((x, i) => Math.abs(x.relevance_score - res[i].relevance_score) <= 1e-5));
      check(`${what} /rerank: documents returned`, ar.every((x) => x.document && x.document.text === c.documents[x.index]));
    }
  }
}

async function passes(model) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`frugal_forward_passes_total{model="${model}"} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function concurrency() {
  const model = 'tiny-bert-q8_0';
  const N = 64;
  const words = 'memory server model weights paged demand batch token vector cache query document llama raspberry'.split(' ');
  const texts = Array.from({ length: N }, (_, i) =>
    `Request ${i}: ` + Array.from({ length: 40 }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(' '));
  const alone = [];
  for (const t of texts) {
    const r = await attempt('one by one', () => postJson('/v1/embeddings', { model, input: t }));
    alone.push(r && r.status === 200 ? r.json.data[0].embedding : null);
  }
  check('one by one: every request is 200', alone.every((v) => v));
  const before = await passes(model);
  const burst = await Promise.all(texts.map((t) => postJson('/v1/embeddings', { model, input: t }).catch((e) => ({ status: -1, json: { e: String(e) } }))));
  const after = await passes(model);
  const statuses = burst.map((r) => r.status);
  check(`${N} concurrent: every request is 200`, statuses.every((s) => s === 200), statuses.filter((s) => s !== 200));
  let worst = 1;
  burst.forEach((r, i) => {
    if (r.status !== 200 || !alone[i]) return;
    const c = cosine(r.json.data[0].embedding, alone[i]);
    worst = Math.min(worst, c);
    check(`concurrent [${i}]: the vector of the text alone (cosine ${c})`, c >= 0.99999);
  });
  const delta = after - before;
  console.log(`${N} concurrent requests: ${delta} forward passes; worst cosine to the one-by-one vector ${worst}`);
  check(`${N} concurrent requests took fewer forward passes (${delta}) than requests`, delta >= 1 && delta < N);
}

for (const model of ['tiny-bert-f16', 'tiny-bert-q8_0']) await embeddings(model);
await rerank();
await concurrency();
done();
