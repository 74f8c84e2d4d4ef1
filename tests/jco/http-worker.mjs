// The I/O half of host.mjs's synchronous `http.send`: runs in a worker thread, sends one request
// with node:http(s) (which never follows redirects) and posts the whole response back on the
// port it was given, then wakes the main thread, which is blocked in Atomics.wait on `signal`.
import http from "node:http";
import https from "node:https";
import { workerData } from "node:worker_threads";

const { port, signal } = workerData;

port.on("message", (request) => {
  let settled = false;
  let timer;
  const reply = (outcome) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    port.postMessage({ id: request.id, ...outcome });
    // The message is queued before the wake-up, so receiveMessageOnPort finds it.
    Atomics.store(signal, 0, request.id);
    Atomics.notify(signal, 0);
  };
  try {
    timer = send(request, reply);
  } catch (error) {
    reply({ error: { tag: "invalid-request", val: String(error?.message ?? error) } });
  }
});

function send({ method, url, headers, body, timeoutMs, maxBytes }, reply) {
  const target = new URL(url);
  const client = target.protocol === "https:" ? https : http;
  const names = new Set();
  const list = [];
  for (const [name, value] of headers) {
    names.add(name.toLowerCase());
    list.push(name, value);
  }
  if (body.byteLength > 0 && !names.has("content-length")) {
    list.push("Content-Length", String(body.byteLength));
  }
  const request = client.request(target, { method, headers: list });
  request.on("error", (error) => {
    reply({ error: { tag: "connection-failed", val: String(error?.message ?? error) } });
  });
  request.on("response", (response) => {
    const chunks = [];
    let size = 0;
    response.on("data", (chunk) => {
      size += chunk.byteLength;
      if (size > maxBytes) {
        reply({ error: { tag: "too-large", val: BigInt(maxBytes) } });
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    response.on("end", () => {
      const pairs = [];
      for (let i = 0; i < response.rawHeaders.length; i += 2) {
        pairs.push([response.rawHeaders[i].toLowerCase(), response.rawHeaders[i + 1]]);
      }
      reply({
        response: {
          status: response.statusCode,
          headers: pairs,
          // A copy of its own: a view into Buffer's shared pool would carry the whole pool.
          body: new Uint8Array(Buffer.concat(chunks)),
        },
      });
    });
    response.on("error", (error) => {
      reply({ error: { tag: "connection-failed", val: String(error?.message ?? error) } });
    });
    response.on("close", () => {
      if (!response.complete) reply({ error: { tag: "connection-failed", val: "the connection was cut mid-response" } });
    });
  });
  request.end(body.byteLength > 0 ? Buffer.from(body.buffer, body.byteOffset, body.byteLength) : undefined);
  // The whole exchange, not only a quiet socket, must fit in the timeout.
  return setTimeout(() => {
    reply({ error: { tag: "timeout" } });
    request.destroy();
  }, timeoutMs);
}
