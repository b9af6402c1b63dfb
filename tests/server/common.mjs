// common.mjs — the little harness of the node clients in tests/server:
// counted checks, a closing "node: N passed, N failed" line (lib.sh's
// run_node adds it to the suite), and `frugal run` / `frugal tokenize` as
// references.
import { spawnSync } from 'node:child_process';
import { isDeepStrictEqual, inspect } from 'node:util';

const counts = { passed: 0, failed: 0 };

function show(v) {
  return inspect(v, { breakLength: Infinity, maxStringLength: 300, maxArrayLength: 20 });
}

export function check(what, cond, detail) {
  if (cond) counts.passed++;
  else {
    counts.failed++;
    console.log(`FAIL: ${what}${detail !== undefined ? ` (${typeof detail === 'string' ? detail : show(detail)})` : ''}`);
  }
  return !!cond;
}

export function eq(what, got, want) {
  return check(what, isDeepStrictEqual(got, want), `got ${show(got)}, want ${show(want)}`);
}

// Run fn; an exception is one failure named what (and returns undefined).
export async function attempt(what, fn) {
  try {
    return await fn();
  } catch (e) {
    check(`${what}: threw`, false, `${e && e.constructor && e.constructor.name}: ${e && e.message}`);
    return undefined;
  }
}

export function done() {
  console.log(`node: ${counts.passed} passed, ${counts.failed} failed`);
  process.exitCode = counts.failed ? 1 : 0;
}

export const BIN = process.env.FRUGAL_BIN || 'build/frugal';
export const port = process.env.PORT;
export const base = `http://127.0.0.1:${port}`;

const decoder = () => new TextDecoder();   // replacement mode, like the server's JSON text

// `frugal run -m FILE -p PROMPT -n N --temp 0 [--chat] [extra]`: the text
// (stdout without its final newline, decoded as TextDecoder does), and the
// prompt and generated token counts from its timing line.
export function frugalRun(file, prompt, n, { chat = false, extra = [] } = {}) {
  const args = ['run', '-m', file, '-p', prompt, '-n', String(n), '--temp', '0', ...(chat ? ['--chat'] : []), ...extra];
  const r = spawnSync(BIN, args, { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`frugal ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  let out = r.stdout;
  if (out.length && out[out.length - 1] === 0x0a) out = out.subarray(0, out.length - 1);
  const err = r.stderr.toString();
  const m = /prompt (\d+) tokens .* generation (\d+) tokens/.exec(err);
  if (!m) throw new Error(`frugal run: no timing line in ${err}`);
  return { text: decoder().decode(out), bytes: out, nPrompt: Number(m[1]), nGen: Number(m[2]) };
}

// `frugal tokenize -m FILE --add-special TEXT`: the ids.
export function frugalTokenize(file, text) {
  const r = spawnSync(BIN, ['tokenize', '-m', file, '--add-special', text]);
  if (r.status !== 0) throw new Error(`frugal tokenize: exit ${r.status}: ${r.stderr}`);
  const s = r.stdout.toString().trim();
  return s ? s.split(/\s+/).map(Number) : [];
}

// A stop string from the middle of text: `len` characters starting near
// the middle, ASCII letters and spaces when possible, whose first
// occurrence is where it was taken (so the answer must end right before
// it).  Returns { stop, at } or undefined.
export function stopFrom(text, len = 3) {
  const chars = Array.from(text);
  const mid = Math.floor(chars.length / 2);
  const order = [];
  for (let d = 0; d < chars.length; d++) {
    if (mid + d < chars.length) order.push(mid + d);
    if (d && mid - d >= 1) order.push(mid - d);
  }
  for (const strict of [true, false]) {
    for (const i of order) {
      if (i < 1 || i + len > chars.length) continue;
      const s = chars.slice(i, i + len).join('');
      if (s.includes('\uFFFD') || chars[i - 1] === '\uFFFD') continue;
      if (strict && !/^[A-Za-z][A-Za-z ]*$/.test(s)) continue;
      const at = chars.slice(0, i).join('').length;   // UTF-16 index
      if (text.indexOf(s) !== at) continue;
      return { stop: s, at };
    }
  }
  return undefined;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
