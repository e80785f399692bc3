// The load generator: K official socket.io-client connections (websocket transport) in one Node process,
// driven by line commands on stdin, reporting JSON lines on stdout.
//
// usage: node bench/loadgen.mjs --urls URL[,URL…] --clients K [--deflate on|off] [--ready-event connect|welcome]
//                               [--concurrency 100] [--connect-timeout-ms 120000] [--max-life-ms 900000]
//                               [--source-addresses N]
// --source-addresses N: client i connects from 127.0.(1 + i mod N).1 (N ≤ 254), so a proxy keyed on the client's
// address (nginx ip_hash, which hashes the first three octets) spreads the clients as it would remote ones.
// stdin:  "start ROUND COUNT"   reset the counters; signals of ROUND numbered n = 0..COUNT-1 are expected
//         "report DEADLINE_MS"  wait until every client has all COUNT signals or the epoch-ms deadline, then report
//         "quit"                close every connection and exit
// stdout: {"type":"ready",…} once connected, {"type":"started"} per start, {"type":"report",…} per report.
// Latency is receipt time minus the signal's `t_pub` (epoch ms float), kept in a log histogram whose
// bucket i holds values in (BASE*F^(i-1), BASE*F^i] ms; bench/stats.py reads the same layout.
import { io } from "socket.io-client";
import { monitorEventLoopDelay } from "node:perf_hooks";
import readline from "node:readline";

const BASE_MS = 0.001;
const FACTOR = 1.02;
const BUCKETS = 1400;
const LOG_FACTOR = Math.log(FACTOR);

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, "")] = argv[i + 1];
  return out;
}

const args = parseArgs(process.argv.slice(2));
const urls = (args.urls || "").split(",").filter(Boolean);
const total = Number(args.clients || 1);
const deflate = (args.deflate || "on") !== "off";
const readyEvent = args["ready-event"] || "connect";
const concurrency = Number(args.concurrency || 100);
const connectTimeoutMs = Number(args["connect-timeout-ms"] || 120000);
const maxLifeMs = Number(args["max-life-ms"] || 900000);
const sourceAddresses = Number(args["source-addresses"] || 0);
if (!(Number.isInteger(sourceAddresses) && sourceAddresses >= 0 && sourceAddresses <= 254)) {
  throw new Error(`--source-addresses must be an integer 0..254, got ${args["source-addresses"]}`);
}

// Date.now() has 1 ms steps: anchor the monotonic clock to the instant it ticks for sub-ms epoch times.
// A preemption between the two reads only makes the offset smaller, so keep the largest of many tries.
function clockOffset(tries = 40) {
  let best = -Infinity;
  for (let i = 0; i < tries; i++) {
    const start = Date.now();
    let now = start;
    while (now === start) now = Date.now();
    best = Math.max(best, now - performance.now());
  }
  return best;
}
const offset = clockOffset();
const epochMs = () => offset + performance.now();

const bucketOf = (ms) => (ms <= BASE_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / BASE_MS) / LOG_FACTOR)));
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const clients = [];
let round = null;  // {id, count, hist, unique, dup, stray, negative, complete, disconnects, cpu, eld, started}
let reportWaiter = null;

function onSignal(client, data) {
  const r = round;
  if (r === null || data === null || typeof data !== "object" || data.round !== r.id) {
    if (r) r.stray++;
    return;
  }
  const n = data.n;
  if (!Number.isInteger(n) || n < 0 || n >= r.count) { r.stray++; return; }
  if (client.got[n]++ > 0) { r.dup++; return; }
  const now = epochMs();
  const latency = now - data.t_pub;
  if (now > r.lastMs) r.lastMs = now;
  if (latency < 0) r.negative++;
  r.hist[bucketOf(latency)]++;
  r.unique++;
  if (++client.unique === r.count) {
    r.complete++;
    if (reportWaiter && r.complete === clients.length) reportWaiter();
  }
}

function connectOne(index) {
  return new Promise((resolve) => {
    const client = { index, got: new Uint8Array(0), unique: 0, ready: false, extensions: "" };
    const socket = io(urls[index % urls.length], {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,  // one connection per client: never multiplex
      timeout: 20000,
      perMessageDeflate: deflate ? { threshold: 1024 } : false,
      ...(sourceAddresses ? { localAddress: `127.0.${1 + (index % sourceAddresses)}.1` } : {}),
    });
    client.socket = socket;
    let settled = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      client.ready = ok;
      client.why = why;
      const ws = socket.io.engine && socket.io.engine.transport && socket.io.engine.transport.ws;
      client.extensions = ws && ws.extensions ? ws.extensions : "";
      resolve(client);
    };
    socket.on(readyEvent, () => done(true));
    socket.on("connect_error", (err) => done(false, String(err && err.message)));
    socket.on("disconnect", () => { if (round) round.disconnects++; });
    socket.on("new_signal", (data) => onSignal(client, data));
  });
}

async function connectAll() {
  const deadline = Date.now() + connectTimeoutMs;
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total && Date.now() < deadline) {
      const index = next++;
      const timer = new Promise((resolve) => setTimeout(() => resolve(null), Math.max(1, deadline - Date.now())));
      const client = await Promise.race([connectOne(index), timer]);
      clients.push(client || { index, ready: false, why: "connect deadline", got: new Uint8Array(0), unique: 0 });
    }
  });
  const started = Date.now();
  await Promise.all(workers);
  const errors = {};
  const extensions = {};
  let ready = 0;
  for (const c of clients) {
    if (c.ready) { ready++; extensions[c.extensions || "none"] = (extensions[c.extensions || "none"] || 0) + 1; }
    else errors[c.why] = (errors[c.why] || 0) + 1;
  }
  emit({ type: "ready", clients: total, ready, failed: total - ready, errors, extensions, seconds: (Date.now() - started) / 1000 });
}

function start(id, count) {
  for (const c of clients) { c.got = new Uint8Array(count); c.unique = 0; }
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  round = {
    id, count, hist: new Uint32Array(BUCKETS), unique: 0, dup: 0, stray: 0, negative: 0,
    complete: count === 0 ? clients.length : 0, disconnects: 0, lastMs: 0, cpu: process.cpuUsage(), eld, started: performance.now(),
  };
  emit({ type: "started", round: id });
}

async function report(deadlineMs) {
  const r = round;
  if (r === null) { emit({ type: "error", error: "report before start" }); return; }
  const live = clients.filter((c) => c.ready).length;
  if (r.complete < live) {
    await new Promise((resolve) => {
      reportWaiter = resolve;
      setTimeout(resolve, Math.max(0, deadlineMs - Date.now()));
    });
    reportWaiter = null;
  }
  const cpu = process.cpuUsage(r.cpu);
  r.eld.disable();
  const hist = [];
  r.hist.forEach((count, i) => { if (count) hist.push([i, count]); });
  let short = 0;
  for (const c of clients) if (c.ready && c.unique < r.count) short++;
  emit({
    type: "report", round: r.id, clients: live, expected: live * r.count, unique: r.unique, dup: r.dup,
    stray: r.stray, negative: r.negative, short_clients: short, disconnects: r.disconnects, hist, last_ms: r.lastMs,
    cpu_s: (cpu.user + cpu.system) / 1e6, wall_s: (performance.now() - r.started) / 1000,
    loop_delay_p99_ms: r.eld.percentile(99) / 1e6, loop_delay_max_ms: r.eld.max / 1e6,
    rss_mb: process.memoryUsage().rss / 1048576,
  });
  round = null;
}

function quit() {
  for (const c of clients) if (c.socket) c.socket.close();
  setTimeout(() => process.exit(0), 200);
}

setTimeout(() => { emit({ type: "error", error: "max life reached" }); quit(); }, maxLifeMs).unref();

await connectAll();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  const [cmd, a, b] = line.trim().split(/\s+/);
  if (cmd === "start") start(a, Number(b));
  else if (cmd === "report") await report(Number(a));
  else if (cmd === "quit") quit();
});
rl.on("close", quit);
