// A second host of the `dynamics:connector/connector` world, in Node, to show the world is
// host-neutral: the component transpiled by jco (`jco transpile --instantiation async`), its WASI
// p2 imports (stdio, clocks, random) served by @bytecodealliance/preview2-shim, and the world's
// own imports written here: `http` (send, wait) and `log`.
//
// Like the Rust host it makes a fresh instance for every call, asks the component for the
// connection's origins (`connections.endpoints`) first and lets `http.send` reach those origins
// only; redirects are never followed, and one to an origin outside the list is `redirect-denied`.
// The Rust host's other rules (host patterns per cloud, loopback and private addresses refused on
// the resolved address) are deliberately not repeated: this host only has to run the component.
//
// Why a worker thread for `http.send`: jco lowers a world import as a plain synchronous JS
// call, so `send` must return the whole response before it returns to wasm, and while wasm is on
// the stack Node's event loop cannot run any of its (asynchronous) networking. The choices were:
//   - `--async-mode jspi`, which lets an import return a promise and suspends wasm meanwhile. It
//     needs WebAssembly.Suspending, which Node 20's V8 (11.3) does not have, with or without
//     flags (`--experimental-wasm-jspi` is an unknown option there).
//   - child_process.execFileSync of a small node script per request: simple, but a new process
//     (tens of milliseconds) and a new TCP connection per request, with binary bodies and errors
//     squeezed through argv, stdin and stdout.
//   - one worker thread for the host's life that does the I/O with node:http(s), while the main
//     thread blocks in Atomics.wait on a SharedArrayBuffer until the worker has posted the whole
//     response on a MessagePort, which the main thread then takes synchronously with
//     receiveMessageOnPort. No process per request, keep-alive connections, bodies passed as
//     bytes, timeouts enforced in both threads. preview2-shim itself serves WASI's blocking
//     streams the same way (synckit). This is the one used.
// `wait` is Atomics.wait on a private SharedArrayBuffer that nothing ever notifies: a
// synchronous sleep that does not spin.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";
import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";

const LEVELS = ["trace", "debug", "info", "warn", "error"];
const METHODS = new Set(["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]);

/** A request `start`ed by the component: this host has its result already. */
class Pending {
  constructor(result) {
    this.result = result;
  }
}

export class ConnectorError extends Error {
  constructor(payload) {
    super(`${payload.code}: ${payload.message}`);
    this.payload = payload;
    this.code = payload.code;
  }
}

/** Loads the jco output in `dir` (`<dir>/<name>.js` and its core modules) once. */
export async function loadConnector(dir, options = {}) {
  const name = options.name ?? "connector";
  const { instantiate } = await import(pathToFileURL(join(dir, `${name}.js`)).href);
  const modules = new Map();
  const getCoreModule = async (file) => {
    if (!modules.has(file)) modules.set(file, WebAssembly.compile(await readFile(join(dir, file))));
    return modules.get(file);
  };
  return new Host(instantiate, getCoreModule, options);
}

export class Host {
  #instantiate;
  #getCoreModule;
  #http;
  #secretKeys;

  constructor(instantiate, getCoreModule, options) {
    this.#instantiate = instantiate;
    this.#getCoreModule = getCoreModule;
    this.timeLimitMs = options.timeLimitMs ?? 120_000;
    this.maxBodyBytes = options.maxBodyBytes ?? 64 << 20;
    this.logLevel = options.logLevel ?? "info";
    this.logLines = []; // the component's log lines, secrets redacted (JCO_HOST_LOG=1: stderr too)
    this.requests = [];
    this.#http = new SyncHttp();
  }

  /** Runs `run(exports)` on a fresh instance; with a connection, its origins are the allow-list. */
  async call(connection, run) {
    const state = { allowed: new Set(), deadline: Date.now() + this.timeLimitMs, secrets: [] };
    // WASI locked down as the Rust host has it: no environment, no arguments, no files, no
    // sockets (the component imports none of the last two anyway).
    const wasi = new WASIShim({
      sandbox: { env: {}, args: ["dynamics-connector"], preopens: {}, enableNetwork: false },
    }).getImportObject();
    const exports = await this.#instantiate(this.#getCoreModule, {
      ...wasi,
      "dynamics:connector/http": {
        send: (request) => this.#send(state, request),
        // World 0.2.0's `send-all`: this host sends the requests in turn, which the world
        // allows ("a simple host may send them one after another"); results keep their order.
        sendAll: (requests) => requests.map((request) => this.#send(state, request)),
        // World 0.3.0's `start` and `finish`: this host sends at `start` and keeps the result
        // for `finish`, which the world allows ("a simple host may send it now").
        Pending,
        start: (request) => new Pending(this.#send(state, request)),
        finish: (pending) => pending.result,
        wait: (durationMs) => wait(state, durationMs),
      },
      "dynamics:connector/log": { log: (level, message) => this.#log(state, level, message) },
    });
    if (connection) {
      state.secrets = await this.#secretsOf(connection);
      let origins = [];
      try {
        origins = exports.connections.endpoints(connection);
      } catch {
        // A connection the component cannot read names no origins; the call reports why.
      }
      for (const origin of origins) state.allowed.add(new URL(origin).origin);
    }
    try {
      return run(exports);
    } catch (error) {
      if (error?.payload?.code) throw new ConnectorError(error.payload);
      throw error;
    }
  }

  async definition() {
    return this.call(null, (c) => c.component.definition());
  }

  async endpoints(connection) {
    return this.call(null, (c) => c.connections.endpoints(connection));
  }

  async acquireToken(connection) {
    return this.call(connection, (c) => c.connections.acquireToken(connection));
  }

  /** Runs an action; `input` is an object, the output comes back parsed. */
  async invoke(key, connection, input = {}) {
    return JSON.parse(
      await this.call(connection, (c) => c.actions.invoke(key, connection, JSON.stringify(input))),
    );
  }

  /** An action's inputs once `input` (partial) is chosen: world 0.2.0's `input-definitions`. */
  async inputDefinitions(key, connection, input = {}) {
    return this.call(connection, (c) => c.actions.inputDefinitions(key, connection, JSON.stringify(input)));
  }

  /** `http.send` as a call whose connection names `allowedOrigins` sees it, for tests. */
  sendAs(allowedOrigins, request) {
    const state = {
      allowed: new Set(allowedOrigins.map((origin) => new URL(origin).origin)),
      deadline: Date.now() + this.timeLimitMs,
      secrets: [],
    };
    return this.#send(state, { headers: [], body: new Uint8Array(), ...request });
  }

  close() {
    this.#http.close();
  }

  #send(state, request) {
    let url;
    try {
      url = new URL(request.url);
    } catch {
      return err({ tag: "invalid-request", val: `not an absolute URL: ${request.url}` });
    }
    if (!METHODS.has(request.method)) {
      return err({ tag: "invalid-request", val: `unsupported method ${request.method}` });
    }
    if (!state.allowed.has(url.origin)) {
      return err({ tag: "denied", val: `${url.origin} is not one of this connection's endpoints` });
    }
    const left = state.deadline - Date.now();
    if (left <= 0) return err({ tag: "timeout" });
    const timeoutMs = Math.min(request.timeoutMs ?? left, left);
    this.requests.push(`${request.method} ${url.origin}${url.pathname}`);
    const outcome = this.#http.send({
      method: request.method,
      url: url.href,
      headers: request.headers,
      body: request.body,
      timeoutMs,
      maxBytes: this.maxBodyBytes,
    });
    if (outcome.error) return err(outcome.error);
    const { response } = outcome;
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.find(([name]) => name === "location")?.[1];
      if (location !== undefined) {
        let target;
        try {
          target = new URL(location, url);
        } catch {
          return err({ tag: "redirect-denied", val: `an unreadable redirect: ${location}` });
        }
        if (!state.allowed.has(target.origin)) {
          return err({ tag: "redirect-denied", val: `a redirect to ${target.origin}` });
        }
      }
    }
    return { tag: "ok", val: response };
  }

  #log(state, level, message) {
    if (LEVELS.indexOf(level) < LEVELS.indexOf(this.logLevel)) return;
    let line = message;
    for (const secret of state.secrets) line = line.split(secret).join("***");
    this.logLines.push(`${level} ${line}`);
    if (process.env.JCO_HOST_LOG) process.stderr.write(`[connector ${level}] ${line}\n`);
  }

  // The values of the connection's secret inputs (by the definitions' input types) and tokens,
  // which log lines never show.
  async #secretsOf(connection) {
    this.#secretKeys ??= await this.definition().then((definition) => {
      const keys = new Map();
      for (const c of definition.connections) {
        keys.set(c.key, c.inputs.filter((i) => i.inputType === "secret").map((i) => i.key));
      }
      return keys;
    });
    const keys = this.#secretKeys.get(connection.definition) ?? [];
    const secrets = connection.fields.filter(([key]) => keys.includes(key)).map(([, value]) => value);
    if (connection.token) secrets.push(connection.token.accessToken, connection.token.refreshToken);
    return secrets.filter((secret) => secret);
  }
}

function err(val) {
  return { tag: "err", val };
}

function wait(state, durationMs) {
  if (Date.now() + durationMs > state.deadline) return false;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, durationMs);
  return true;
}

/** One worker thread (http-worker.mjs) that sends requests while the caller blocks. */
class SyncHttp {
  #worker;
  #port;
  #signal;
  #next = 0;

  #start() {
    const { port1, port2 } = new MessageChannel();
    this.#signal = new Int32Array(new SharedArrayBuffer(4));
    this.#port = port1;
    this.#worker = new Worker(new URL("./http-worker.mjs", import.meta.url), {
      workerData: { port: port2, signal: this.#signal },
      transferList: [port2],
    });
    // Neither the worker nor its port keeps Node running once the tests are done.
    this.#worker.unref();
    this.#port.unref();
  }

  send(request) {
    if (!this.#worker) this.#start();
    const id = ++this.#next;
    this.#port.postMessage({ id, ...request });
    // The worker times the request out itself; the extra second only guards against a worker
    // that never answers.
    const until = Date.now() + request.timeoutMs + 1000;
    for (;;) {
      // Replies to earlier requests that timed out here are dropped.
      let message;
      while ((message = receiveMessageOnPort(this.#port))) {
        if (message.message.id === id) return message.message;
      }
      const left = until - Date.now();
      if (left <= 0) return { error: { tag: "timeout" } };
      // The worker posts a reply, then stores its id here and notifies: sleep while the id here
      // is not ours (an id seen here means its reply is already on the port).
      const seen = Atomics.load(this.#signal, 0);
      if (seen !== id) Atomics.wait(this.#signal, 0, seen, left);
    }
  }

  close() {
    this.#worker?.terminate();
    this.#port?.close();
    this.#worker = undefined;
  }
}
