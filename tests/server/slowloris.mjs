// slowloris.mjs PORT MODEL — connection exhaustion (issue 11, finding 1).
//
// Opens slow-header connections — each sends a request line and then one
// header byte a second, never finishing — from ten loopback addresses
// (127.0.0.2 .. 127.0.0.11, SPREAD per address: under the per-IP limit)
// and FLOOD more from 127.0.0.12 (over it), reconnecting whenever the
// server drops one, for SECONDS.  Meanwhile a well-behaved client on
// 127.0.0.1 asks GET /health and a short chat completion in turn; each
// must be answered within 1 s.  Checks, and prints "node: N passed, N failed":
//   - every good request answered 200 within 1 s;
//   - the slow connections really were held open at once (> 300 open
//     for over a second at the same time);
//   - from 127.0.0.12 no more than the per-IP limit were ever held at
//     once, and the rest were closed by the server at once;
//   - slow connections are dropped by the header deadline (closed by the
//     server after two seconds or more).
import net from 'node:net';
import http from 'node:http';

const [port, model] = [Number(process.argv[2]), process.argv[3]];
const SPREAD = Number(process.env.SPREAD || 31), FLOOD = Number(process.env.FLOOD || 200);
const SECONDS = Number(process.env.SECONDS_RUN || 12), PER_IP = Number(process.env.PER_IP || 64);
let pass = 0, fail = 0;
const check = (what, ok) => { if (ok) pass++; else { fail++; console.log(`FAIL: ${what}`); } };

const stop = Date.now() + SECONDS * 1000;
const live = new Set();        // connected sockets: {addr, since}
let droppedLate = 0, refusedAtOnce = 0, openedTotal = 0;
let peakHeld = 0, peakFlood = 0;   // connections held for over a second, at once
const sockets = new Set();
// Every 250 ms: how many connections have been held open for over a second
// (a connection the server refuses is closed within milliseconds).
const sampler = setInterval(() => {
  const now = Date.now();
  let held = 0, flood = 0;
  for (const c of live) if (now - c.since > 1000) { held++; if (c.addr === '127.0.0.12') flood++; }
  peakHeld = Math.max(peakHeld, held);
  peakFlood = Math.max(peakFlood, flood);
}, 250);

function slow(addr) {
  if (Date.now() >= stop) return;
  const s = net.connect({ host: '127.0.0.1', port, localAddress: addr });
  sockets.add(s);
  let timer = null, me = null;
  s.on('connect', () => {
    me = { addr, since: Date.now() };
    live.add(me);
    openedTotal++;
    s.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const trickle = 'X-Padding: ' + 'a'.repeat(200);
    let i = 0;
    timer = setInterval(() => { if (i < trickle.length) s.write(trickle[i++]); }, 1000);
  });
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => {
    sockets.delete(s);
    if (timer) clearInterval(timer);
    if (me) {
      live.delete(me);
      const age = Date.now() - me.since;
      if (Date.now() < stop) { if (age >= 2000) droppedLate++; else if (age < 1000) refusedAtOnce++; }
    }
    // reconnect, a little later (a refused or reset one at once would spin)
    if (Date.now() < stop) setTimeout(() => slow(addr), 200);
  });
}

for (let a = 2; a <= 11; a++) for (let i = 0; i < SPREAD; i++) slow(`127.0.0.${a}`);
for (let i = 0; i < FLOOD; i++) slow('127.0.0.12');

const agent = new http.Agent({ keepAlive: false });
function ask(method, path, body) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, localAddress: '127.0.0.1',
                               headers: body ? { 'Content-Type': 'application/json' } : {}, timeout: 5000 },
      (res) => { res.resume(); res.on('end', () => resolve({ status: res.statusCode, ms: Date.now() - t0 })); });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, ms: Date.now() - t0, err: e.message }));
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
await sleep(2000);             // let the flood connect first
let good = 0, slowest = 0;
while (Date.now() < stop - 500) {
  const h = await ask('GET', '/health');
  check(`GET /health answered 200 within 1 s (got ${h.status} in ${h.ms} ms ${h.err || ''}; ${live.size} slow connections open)`,
        h.status === 200 && h.ms <= 1000);
  const c = await ask('POST', '/v1/chat/completions',
                      { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
  check(`a chat completion answered 200 within 1 s (got ${c.status} in ${c.ms} ms ${c.err || ''}; ${live.size} open)`,
        c.status === 200 && c.ms <= 1000);
  good += 2;
  slowest = Math.max(slowest, h.ms, c.ms);
  await sleep(300);
}
clearInterval(sampler);
console.log(`slowloris: ${good} good requests, slowest ${slowest} ms; slow connections opened ${openedTotal}, ` +
            `held open at once ${peakHeld} (from 127.0.0.12: ${peakFlood}), closed by the header deadline ` +
            `${droppedLate}, refused at once ${refusedAtOnce}`);
check(`some good requests were made (${good})`, good >= 10);
check(`more than 300 slow connections held at once (${peakHeld})`, peakHeld > 300);
check(`127.0.0.12 never held more than ${PER_IP} (${peakFlood})`, peakFlood <= PER_IP && peakFlood > 0);
check(`connections over the per-IP limit refused at once (${refusedAtOnce})`, refusedAtOnce > 0);
check(`slow connections closed by the header deadline (${droppedLate})`, droppedLate > 0);
for (const s of sockets) s.destroy();
console.log(`node: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
