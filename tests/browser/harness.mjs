// What the browser tests run against: a real `callhook serve` (the debug binary, a fresh
// data folder), a real receiver on loopback, and headless Debian Chromium.

import { spawn } from "node:child_process";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { createServer } from "node:http";
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
 * Starts `callhook serve` on a free loopback port with an empty data folder and reads what
 * its first start prints once: the address, the admin password, an API key, the operator token.
 */
export async function startCallhook() {
  const dir = await mkdtemp(join(tmpdir(), "callhook-browser-"));
  const child = spawn(binary(), ["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"], {
    env: { ...process.env, CALLHOOK_ALLOW_TARGETS: "127.0.0.0/8", RUST_LOG: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const first = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`callhook did not start:\n${stderr}`)), 30_000);
    child.on("exit", (code) => fail(new Error(`callhook exited with ${code}:\n${stderr}`)));
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      const signIn = stderr.match(/Admin sign-in\s+(http:\/\/\S+?)\/\s+as\s+(\S+)\s+\/\s+(\S+)/);
      const key = stderr.match(/API key\s+(chk_\S+)/);
      const operator = stderr.match(/Operator token\s+(cho_\S+)/);
      if (signIn && key && operator) {
        clearTimeout(timer);
        ok({ base: signIn[1], email: signIn[2], password: signIn[3], apiKey: key[1], operatorToken: operator[1] });
      }
    });
  });
  child.removeAllListeners("exit");
  return {
    ...first,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => (child.exitCode !== null ? ok() : child.once("exit", ok)));
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
