// A pool of official socket.io-client connections for the chaos suite, one Node process, driven on stdin.
// Each client reconnects itself (to the next URL) with auth {since, epoch} = the last (epoch, seq) it saw,
// and counts every new_signal per (epoch, seq) WITHOUT deduplicating, so duplicates can be counted.
//
// usage: node tests/chaos/pool.mjs --urls URL[,URL...] --clients K [--concurrency 50]
// stdin:  "report ID"  -> {"type":"report","id":ID,"connected":n,"clients":[...],"latency":{...}}
//         "quit"       -> close everything and exit
// stdout: {"type":"welcomed"} once every client has its start cursor.
import { io } from "socket.io-client";
import readline from "node:readline";

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
const urls = (args.urls || "").split(",").filter(Boolean);
const total = Number(args.clients || 1);
const concurrency = Number(args.concurrency || 50);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Latency from the signal's emitted_at to receipt, live signals only, in 1 ms buckets up to 60 s.
const latency = new Uint32Array(60001);
let quitting = false;
let welcomedSent = false;
const clients = [];

class Client {
  constructor(index) {
    this.index = index;
    this.urlIndex = index % urls.length;
    this.epoch = null;
    this.seq = 0;
    this.start = null;
    this.counts = new Map(); // epoch -> Uint8Array of counts indexed by seq
    this.dups = [];
    this.dupTotal = 0;
    this.connects = 0;
    this.resyncs = 0;
    this.other = 0;
    this.socket = null;
    this.connected = false;
    this.backoff = 50;
  }

  connect() {
    if (quitting) return Promise.resolve();
    return new Promise((resolve) => {
      const auth = this.epoch === null ? {} : { since: this.seq, epoch: this.epoch };
      const socket = io(urls[this.urlIndex], {
        transports: ["websocket"], reconnection: false, forceNew: true, timeout: 10000, auth,
      });
      this.socket = socket;
      let settled = false;
      const settle = () => { if (!settled) { settled = true; resolve(); } };
      socket.on("connect", () => { this.connected = true; this.connects++; this.backoff = 50; settle(); });
      socket.on("connect_error", () => { settle(); this.retry(socket); });
      socket.on("disconnect", () => { this.connected = false; settle(); this.retry(socket); });
      socket.on("welcome", (data) => {
        if (this.epoch === null && data && typeof data.epoch === "string") {
          this.epoch = data.epoch;
          this.seq = Number(data.seq) || 0;
          this.start = [this.epoch, this.seq];
          checkWelcomed();
        }
      });
      socket.on("resync", (data) => {
        this.resyncs++;
        if (data && typeof data.epoch === "string") { this.epoch = data.epoch; this.seq = 0; }
      });
      socket.on("new_signal", (data) => this.record(data));
    });
  }

  retry(socket) {
    if (quitting || socket !== this.socket) return;
    this.socket = null;
    socket.removeAllListeners();
    socket.close();
    this.urlIndex = (this.urlIndex + 1) % urls.length;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 1000);
    setTimeout(() => this.connect(), wait);
  }

  record(data) {
    if (!data || typeof data !== "object" || !Number.isInteger(data.seq) || typeof data.epoch !== "string") {
      this.other++;
      return;
    }
    const { epoch, seq } = data;
    let counts = this.counts.get(epoch);
    if (!counts || counts.length <= seq) {
      const grown = new Uint8Array(Math.max(seq + 1, (counts ? counts.length : 0) * 2, 1024));
      if (counts) grown.set(counts);
      counts = grown;
      this.counts.set(epoch, counts);
    }
    if (counts[seq] > 0) {
      this.dupTotal++;
      if (this.dups.length < 100) this.dups.push([epoch, seq, 1]);
    }
    if (counts[seq] < 255) counts[seq]++;
    if (epoch !== this.epoch) { this.epoch = epoch; this.seq = seq; } else if (seq > this.seq) this.seq = seq;
    if (typeof data.emitted_at === "string") {
      const ms = Date.now() - Date.parse(data.emitted_at);
      if (ms >= 0) latency[Math.min(ms, latency.length - 1)]++;
    }
  }

  summary() {
    const ranges = {};
    for (const [epoch, counts] of this.counts) {
      const list = [];
      let first = -1;
      for (let s = 1; s <= counts.length; s++) {
        const has = s < counts.length && counts[s] > 0;
        if (has && first < 0) first = s;
        if (!has && first >= 0) { list.push([first, s - 1]); first = -1; }
      }
      ranges[epoch] = list;
    }
    return { start: this.start, ranges, dups: this.dups, dup_total: this.dupTotal, connects: this.connects,
             resyncs: this.resyncs, other: this.other, connected: this.connected };
  }
}

function checkWelcomed() {
  if (!welcomedSent && clients.length === total && clients.every((c) => c.start !== null)) {
    welcomedSent = true;
    emit({ type: "welcomed" });
  }
}

function percentile(p) {
  let n = 0;
  for (const c of latency) n += c;
  if (n === 0) return null;
  let seen = 0;
  for (let i = 0; i < latency.length; i++) {
    seen += latency[i];
    if (seen >= p * n) return i;
  }
  return latency.length - 1;
}

async function main() {
  for (let i = 0; i < total; i++) clients.push(new Client(i));
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total) await clients[next++].connect();
  });
  await Promise.all(workers);
  checkWelcomed();
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, id] = line.trim().split(/\s+/);
  if (command === "report") {
    emit({ type: "report", id: Number(id), connected: clients.filter((c) => c.connected).length,
           clients: clients.map((c) => c.summary()),
           latency: { p50_ms: percentile(0.5), p99_ms: percentile(0.99), max_ms: percentile(1) } });
  } else if (command === "quit") {
    quitting = true;
    for (const c of clients) if (c.socket) c.socket.close();
    setTimeout(() => process.exit(0), 200);
  }
}).on("close", () => { quitting = true; process.exit(0); });

main();
