// The official socket.io-client: connect, record events as JSON lines, exit after N signals or a deadline.
// usage: node client.mjs URL [--auth JSON] [--count N] [--timeout-ms T] [--publish-after-welcome CMD]
import { io } from "socket.io-client";

const [url, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => { const i = rest.indexOf(name); return i >= 0 ? rest[i + 1] : dflt; };
const auth = JSON.parse(opt("--auth", "{}"));
const count = Number(opt("--count", "1"));
const timeoutMs = Number(opt("--timeout-ms", "10000"));

const socket = io(url, { auth, transports: ["websocket"], reconnection: false });
let signals = 0;
const print = (event, data) => process.stdout.write(JSON.stringify({ event, data }) + "\n");
const done = (code) => { socket.close(); process.exit(code); };
setTimeout(() => { print("timeout", null); done(0); }, timeoutMs);
socket.on("connect_error", (err) => { print("connect_error", err.message); done(0); });
socket.on("welcome", (data) => print("welcome", data));
socket.on("resync", (data) => print("resync", data));
socket.on("new_signal", (data) => { print("new_signal", data); if (++signals >= count) done(0); });
