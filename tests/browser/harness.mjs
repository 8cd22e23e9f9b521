// What the browser tests run against: a real `callhook serve` (the debug binary, a fresh
// data folder), a real receiver on loopback, and headless Debian Chromium.

import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
export const screenshots = join(here, "screenshots");

/** The callhook binary: $CALLHOOK_BIN, else the debug build in the cargo target folder. */
function binary() {
  if (process.env.CALLHOOK_BIN) return process.env.CALLHOOK_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(root, "target");
  return join(target, "debug", "callhook");
}

/**
 * Runs `callhook serve` on `dir` with `args` and the extra environment `env`; its standard
 * error is read by the caller.
 */
function serve(dir, args, env) {
  return spawn(binary(), ["serve", "--data-dir", dir, ...args], {
    env: { ...process.env, CALLHOOK_ALLOW_TARGETS: "127.0.0.0/8", CALLHOOK_POLL_INTERVAL: "200ms", RUST_LOG: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** Resolves once `child` exited. */
const exited = (child) => new Promise((ok) => (child.exitCode !== null ? ok() : child.once("exit", ok)));

/**
 * Starts `callhook serve` on a free loopback port with an empty data folder and reads what
 * its first start prints once: the address, the account, the admin password, an API key, the
 * operator token. `restart({ config })` starts it again on the same folder and address with
 * a settings file (a PBX connector names the account, so it comes after the first start).
 * `env` adds settings as environment variables, e.g. `{ CALLHOOK_RETRY_SCHEDULE: "1h" }`.
 */
export async function startCallhook({ env = {} } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "callhook-browser-"));
  let child = serve(dir, ["--listen", "127.0.0.1:0"], env);
  let stderr = "";
  const first = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`callhook did not start:\n${stderr}`)), 30_000);
    child.on("exit", (code) => fail(new Error(`callhook exited with ${code}:\n${stderr}`)));
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      const signIn = stderr.match(/Admin sign-in\s+(http:\/\/\S+?)\/\s+as\s+(\S+)\s+\/\s+(\S+)/);
      const account = stderr.match(/Account\s+(acct_\S+)/);
      const key = stderr.match(/API key\s+(chk_\S+)/);
      const operator = stderr.match(/Operator token\s+(cho_\S+)/);
      if (signIn && account && key && operator) {
        clearTimeout(timer);
        ok({ base: signIn[1], email: signIn[2], password: signIn[3], accountId: account[1], apiKey: key[1], operatorToken: operator[1] });
      }
    });
  });
  child.removeAllListeners("exit");
  return {
    ...first,
    async restart({ config }) {
      child.kill("SIGTERM");
      await exited(child);
      const file = join(dir, "callhook.toml");
      await writeFile(file, config);
      child = serve(dir, ["--config", file, "--listen", first.base.replace("http://", "")], env);
      let log = "";
      child.stderr.on("data", (chunk) => (log += chunk));
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          if ((await fetch(first.base + "/healthz")).ok) return;
        } catch { /* not up yet */ }
        if (child.exitCode !== null || Date.now() > until) throw new Error(`callhook did not restart:\n${log}`);
        await new Promise((ok) => setTimeout(ok, 100));
      }
    },
    async stop() {
      child.kill("SIGTERM");
      await exited(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A receiver on loopback that answers 200 and keeps every request it got. */
export async function startReceiver() {
  const requests = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ received: true }));
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/hooks/calls`,
    requests,
    stop: () => new Promise((ok) => server.close(ok)),
  };
}

/** Headless Debian Chromium, as the issue asks for it. */
export async function launchBrowser() {
  await mkdir(screenshots, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A JSON call to the REST API. */
export async function api(base, token, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

/**
 * A scripted Asterisk on loopback (the Manager Interface): it accepts callhook's login,
 * answers its channel listings and pings, and plays a click-to-call call for every
 * `Originate` it hears, one stage per `advance()`: the agent's phone rings (at once), the
 * agent answers and the customer's phone rings, the customer answers, both hang up. Frames
 * shaped like Asterisk 22's (tests/fixtures/asterisk-ami).
 */
export async function startFakeAmi() {
  const originates = [];
  const waiting = [];
  let socket = null;
  let stage = 0;
  let call = null;
  const frame = (pairs) => pairs.map(([k, v]) => `${k}: ${v}\r\n`).join("") + "\r\n";
  const send = (text) => socket?.write(text);

  /** The frames of one stage of the call placed for `o` (the Originate's headers). */
  function stageFrames(o, n) {
    const agent = { name: "PJSIP/101-00000010", id: "1790700000.1" };
    const customer = { name: "PJSIP/trunk-00000011", id: "1790700004.2" };
    const chan = (event, c, state, more = []) => frame([
      ["Event", event], ["Channel", c.name], ["ChannelState", state],
      ["CallerIDNum", c === agent ? o.did : o.exten], ["Context", o.context], ["Exten", o.exten],
      ["Uniqueid", c.id], ["Linkedid", agent.id], ...more,
    ]);
    const dial = (event, status) => chan(event, agent, "6", [
      ["DestChannel", customer.name], ["DestUniqueid", customer.id],
      event === "DialBegin" ? ["DialString", "trunk/" + o.exten] : ["DialStatus", status],
    ]);
    const bridge = [["BridgeUniqueid", "b1"]];
    switch (n) {
      case 0: return frame([["Response", "Success"], ["ActionID", o.actionId], ["Message", "Originate successfully queued"]])
        + chan("Newchannel", agent, "0")
        + chan("VarSet", agent, "0", [["Variable", o.refVariable], ["Value", o.ref]])
        + frame([["Event", "DialBegin"], ["DestChannel", agent.name], ["DestCallerIDNum", o.did],
          ["DestUniqueid", agent.id], ["DestLinkedid", agent.id], ["DialString", "101"]])
        + chan("Newstate", agent, "5");
      case 1: return chan("Newstate", agent, "6")
        + frame([["Event", "OriginateResponse"], ["ActionID", o.actionId], ["Response", "Success"],
          ["Channel", agent.name], ["Context", o.context], ["Exten", o.exten], ["Reason", "4"], ["Uniqueid", agent.id]])
        + frame([["Event", "DialEnd"], ["DestChannel", agent.name], ["DestUniqueid", agent.id], ["DialStatus", "ANSWER"]])
        + chan("Newchannel", customer, "0") + dial("DialBegin") + chan("Newstate", customer, "5");
      case 2: return chan("Newstate", customer, "6") + dial("DialEnd", "ANSWER")
        + chan("BridgeEnter", agent, "6", bridge) + chan("BridgeEnter", customer, "6", bridge);
      case 3: return chan("HangupRequest", customer, "6", [["Cause", "16"]]) + chan("BridgeLeave", customer, "6", bridge)
        + chan("Hangup", customer, "6", [["Cause", "16"]]) + chan("BridgeLeave", agent, "6", bridge)
        + chan("Hangup", agent, "6", [["Cause", "16"]]);
      default: return "";
    }
  }

  function action(text) {
    const h = {};
    const vars = [];
    for (const line of text.split("\r\n")) {
      const at = line.indexOf(": ");
      if (at < 0) continue;
      const [k, v] = [line.slice(0, at), line.slice(at + 2)];
      if (k === "Variable") vars.push(v); else h[k] = v;
    }
    const id = h.ActionID || "";
    switch (h.Action) {
      case "Login":
        return send(frame([["Response", "Success"], ["ActionID", id], ["Message", "Authentication accepted"]]));
      case "CoreShowChannels":
        return send(frame([["Response", "Success"], ["ActionID", id], ["EventList", "start"], ["Message", "Channels will follow"]])
          + frame([["Event", "CoreShowChannelsComplete"], ["ActionID", id], ["EventList", "Complete"], ["ListItems", "0"]]));
      case "Originate": {
        const [refVariable, ref] = vars[0].split("=");
        call = { actionId: id, refVariable, ref, exten: h.Exten, context: h.Context,
          did: h.CallerID.replace(/[<>]/g, ""), text };
        originates.push(call);
        stage = 0;
        send(stageFrames(call, stage));
        while (waiting.length) waiting.shift()();
        return;
      }
      default:
        return send(frame([["Response", "Success"], ["ActionID", id]]));
    }
  }

  const server = createTcpServer((s) => {
    socket = s;
    let buf = "";
    s.write("Asterisk Call Manager/9.0.0\r\n");
    s.on("data", (chunk) => {
      buf += chunk;
      let end;
      while ((end = buf.indexOf("\r\n\r\n")) >= 0) {
        action(buf.slice(0, end));
        buf = buf.slice(end + 4);
      }
    });
    s.on("error", () => {});
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: server.address().port,
    originates,
    /** Resolves once an `Originate` was heard. */
    originated: () => new Promise((ok) => (call ? ok() : waiting.push(ok))),
    /** Plays the next stage of the call. */
    advance() {
      stage += 1;
      send(stageFrames(call, stage));
    },
    stop: () => new Promise((ok) => { socket?.destroy(); server.close(ok); }),
  };
}
