// The Node reference relay: a socket.io 4 server subscribed with the npm `redis` client, calling io.emit.
// usage: node bench/peers/node_relay.mjs --port N --redis URL [--channel quantum_signals]
// GET /readyz answers 200 once the subscription is confirmed.
import http from "node:http";
import { Server } from "socket.io";
import { createClient } from "redis";

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
const channel = args.channel || "quantum_signals";

let subscribed = false;
const server = http.createServer((req, res) => {
  if (req.url === "/readyz") {
    res.writeHead(subscribed ? 200 : 503, { "Content-Type": "text/plain" });
    res.end(subscribed ? "ok" : "not subscribed");
  } else {
    res.writeHead(404);
    res.end();
  }
});
const io = new Server(server);  // socket.io 4 defaults: perMessageDeflate off, ping 25 s

const subscriber = createClient({ url: args.redis });
subscriber.on("error", (err) => console.error("redis:", err.message));
await subscriber.connect();
await subscriber.subscribe(channel, (message) => {
  let signal;
  try { signal = JSON.parse(message); } catch { return; }
  io.emit("new_signal", signal);
});
subscribed = true;
server.listen(Number(args.port), "127.0.0.1");
const stop = () => { io.close(); subscriber.quit().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
