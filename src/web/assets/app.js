// callhook's web page: small progressive enhancements. Every page works without this
// script except adding header and body rows, the parameter picker, the form's Send test,
// revealing the signing secret, and a click-to-call request's state and pending deliveries
// updating on their own (a reload shows them too).
"use strict";

(function () {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // Times: the server writes UTC (a `datetime` ending in Z); show them in the reader's own
  // zone and language, the zone named. A time written with an offset is pinned to a zone (a
  // webhook's deliveries, in the webhook's zone) and stays as the server wrote it.
  const stamp = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const myZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const localise = (t) => {
    if (!/Z$/.test(t.getAttribute("datetime") || "") || !/UTC$/.test(t.textContent.trim())) return;
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) {
      t.title = t.textContent.trim();
      t.textContent = myZone ? stamp.format(d) + " " + myZone : stamp.format(d);
    }
  };
  $$("time[datetime]").forEach(localise);

  // Forms that ask first (rotate a secret, revoke a key, remove a number).
  for (const form of $$("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  // Buttons that take a moment (Send test waits for the receiver) say so.
  for (const btn of $$("button[data-busy]")) {
    btn.form?.addEventListener("submit", () => {
      btn.setAttribute("aria-disabled", "true");
      btn.classList.add("busy");
      btn.lastChild.textContent = btn.dataset.busy;
    });
  }

  // Copy buttons for text shown on the page (a new API key).
  for (const btn of $$("button[data-copy]")) {
    btn.addEventListener("click", () => copy($("#" + btn.dataset.copy).textContent, btn));
  }

  async function copy(text, btn) {
    try {
      await navigator.clipboard.writeText(text);
      flash(btn, "Copied");
    } catch {
      flash(btn, "Copy failed");
    }
  }

  function flash(btn, text) {
    const old = btn.dataset.label || btn.textContent;
    btn.dataset.label = old;
    btn.textContent = text;
    setTimeout(() => { btn.textContent = old; }, 1600);
  }

  // The signing secret: fetched only when asked for, so it is not in the page itself.
  const secret = $("#secret-value");
  if (secret) {
    const masked = secret.textContent;
    let value = null;
    const load = async () => {
      if (value === null) {
        const r = await fetch(secret.dataset.url, { headers: { Accept: "application/json" } });
        if (!r.ok) throw new Error("cannot load the secret");
        value = (await r.json()).secret;
      }
      return value;
    };
    const reveal = $("#reveal-secret");
    reveal.addEventListener("click", async () => {
      const shown = reveal.getAttribute("aria-expanded") === "true";
      if (shown) {
        secret.textContent = masked;
        reveal.textContent = "Reveal";
        reveal.setAttribute("aria-expanded", "false");
      } else {
        secret.textContent = await load();
        reveal.textContent = "Hide";
        reveal.setAttribute("aria-expanded", "true");
      }
    });
    $("#copy-secret").addEventListener("click", async (e) => copy(await load(), e.currentTarget));
  }

  // After Send test, bring the result into view and to screen readers.
  const test = $("#test");
  if (test) test.focus();

  // A click-to-call request the Call form made: its state follows the call, read every
  // second from the page's JSON view of it until it is answered or failed.
  const call = $("#click-to-call");
  if (call) {
    call.focus();
    const follow = async () => {
      let r;
      try {
        r = await fetch(call.dataset.url, { headers: { Accept: "application/json" } });
      } catch {
        setTimeout(follow, 2000); // offline for a moment: try again
        return;
      }
      if (!r.ok) return; // signed out, or the request is gone
      const s = await r.json();
      call.dataset.state = s.state;
      const badge = $("#c2c-state");
      badge.className = "badge badge-" + s.badge;
      badge.textContent = s.label;
      for (const step of s.steps) {
        const li = $(`li[data-step="${step.key}"]`, call);
        if (!li) continue;
        li.classList.toggle("done", step.at !== null);
        $(".c2c-label", li).textContent = step.label;
        const t = $("time", li);
        if (step.at !== null && t.getAttribute("datetime") !== step.at) {
          t.setAttribute("datetime", step.at);
          t.textContent = step.at_text;
          localise(t);
        }
      }
      const reason = $("#c2c-reason");
      reason.hidden = s.reason === null;
      reason.textContent = s.reason || "";
      if (s.call_id !== null) {
        const a = document.createElement("a");
        a.href = s.call_url;
        const code = document.createElement("code");
        code.textContent = s.call_id;
        a.appendChild(code);
        $("#c2c-call").replaceChildren(a);
      }
      if (!s.final) setTimeout(follow, 1000);
    };
    if (call.dataset.final !== "true") setTimeout(follow, 1000);
  }

  // Pending deliveries (the log, a call's timeline) follow their state without a reload: the
  // page asks how its pending rows stand every few seconds, less often while nothing moves,
  // and stops once none is pending.
  const pendingRows = () => $$("[data-delivery][data-pending]");
  let liveWait = 1500;
  const follow = async () => {
    const ids = [...new Set(pendingRows().map((r) => r.dataset.delivery))].slice(0, 50);
    if (ids.length === 0) return;
    let r;
    try {
      r = await fetch("/deliveries/live?ids=" + encodeURIComponent(ids.join(",")), { headers: { Accept: "application/json" } });
    } catch {
      setTimeout(follow, 10000); // offline for a moment: try again
      return;
    }
    if (!r.ok) return; // signed out, or refused
    let moved = false;
    for (const d of (await r.json()).deliveries) {
      for (const row of $$("[data-delivery]").filter((el) => el.dataset.delivery === d.id)) {
        const badge = $('[data-live="status"]', row);
        if (badge && (badge.textContent !== d.status || !badge.classList.contains("badge-" + d.status_class))) {
          badge.className = "badge badge-" + d.status_class;
          badge.textContent = d.status;
          moved = true;
        }
        for (const [name, text] of [["attempts", String(d.attempts)], ["response", d.last_response], ["latency", d.latency]]) {
          const cell = $(`[data-live="${name}"]`, row);
          if (cell && cell.textContent !== text) {
            cell.textContent = text;
            moved = true;
          }
        }
        if (d.status_class === "ok") $$(".kind", row).forEach((k) => k.remove()); // no error now
        if (!d.pending) {
          row.removeAttribute("data-pending");
          const next = $('[data-live="next"]', row);
          if (next) next.textContent = "—";
        }
      }
    }
    liveWait = moved ? 1500 : Math.min(liveWait * 1.5, 15000);
    if (pendingRows().length > 0) setTimeout(follow, liveWait);
  };
  if (pendingRows().length > 0) setTimeout(follow, liveWait);

  // The webhook form.
  const form = $("#webhook-form");
  if (!form) return;

  const zone = $("#time_zone[data-browser-default]");
  if (zone) {
    const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (mine && $$("#zones option").some((o) => o.value === mine)) zone.value = mine;
  }

  // Key/value rows (headers, body fields): Add appends a row; each row can be removed.
  function rowList(rowsId, templateId, addId) {
    const rows = $("#" + rowsId);
    const template = $("#" + templateId);
    const add = $("#" + addId);
    if (!rows || !template || !add) return;
    const kind = rows.dataset.kind;
    let next = rows.children.length;
    const renumber = () => {
      $$(".remove-row", rows).forEach((b, i) => b.setAttribute("aria-label", `Remove ${kind} ${i + 1}`));
    };
    add.addEventListener("click", () => {
      const row = template.content.firstElementChild.cloneNode(true);
      for (const el of $$("[id], [for]", row)) {
        if (el.id) el.id = el.id.replace("-N", "-" + next);
        if (el.htmlFor) el.htmlFor = el.htmlFor.replace("-N", "-" + next);
      }
      next += 1;
      rows.appendChild(row);
      renumber();
      $("input", row).focus();
    });
    rows.addEventListener("click", (e) => {
      const btn = e.target.closest(".remove-row");
      if (!btn) return;
      btn.closest(".header-row").remove();
      renumber();
      add.focus();
      schedulePreview();
    });
  }
  rowList("header-rows", "header-row-template", "add-header");
  rowList("body-rows", "body-row-template", "add-body-field");

  // The parameter picker: the chosen trigger's parameters; a click puts `$name` where the
  // admin was typing (the URL, a header value or a body field), or `${name}` when letters
  // follow, so the reference cannot run into them.
  const trigger = $("#trigger");
  const showParams = () => {
    for (const list of $$(".param-list")) list.hidden = list.dataset.trigger !== trigger.value;
  };
  trigger?.addEventListener("change", showParams);
  let target = null;
  form.addEventListener("focusin", (e) => { if (e.target.matches("[data-template]")) target = e.target; });
  $("#param-picker")?.addEventListener("click", (e) => {
    const btn = e.target.closest("button.param");
    if (!btn) return;
    const el = target && document.contains(target) ? target : $("#body-rows [data-template]") || $("#url");
    const start = el.selectionStart ?? el.value.length;
    const end = el.selectionEnd ?? el.value.length;
    const after = el.value.slice(end);
    const name = btn.dataset.param;
    const ref = /^[A-Za-z0-9_]/.test(after) ? "${" + name + "}" : "$" + name;
    el.value = el.value.slice(0, start) + ref + after;
    el.focus();
    el.setSelectionRange(start + ref.length, start + ref.length);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  });

  // Send test: the form as it stands, unsaved, sent once; the result shows under the form.
  const sendTest = $("#send-test");
  const testResult = $("#test-result");
  if (sendTest && testResult) {
    sendTest.hidden = false;
    $("#send-test-hint").hidden = false;
    const label = sendTest.textContent;
    sendTest.addEventListener("click", async () => {
      if (sendTest.getAttribute("aria-disabled") === "true") return;
      sendTest.setAttribute("aria-disabled", "true");
      sendTest.classList.add("busy");
      sendTest.textContent = "Sending…";
      const failed = (text) => {
        const box = document.createElement("section");
        box.className = "callout callout-bad test-result";
        box.setAttribute("role", "status");
        const strong = document.createElement("strong");
        strong.textContent = text;
        box.appendChild(strong);
        testResult.replaceChildren(box);
      };
      try {
        const r = await fetch(sendTest.dataset.url, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/html" },
          body: new URLSearchParams(new FormData(form)),
        });
        if (r.headers.get("x-test-result") === "1") {
          testResult.innerHTML = await r.text();
        } else {
          failed(r.status === 403 ? "Not sent: your role may not send tests." : `Not sent: the server answered ${r.status}.`);
        }
      } catch {
        failed("Not sent: callhook could not be reached.");
      } finally {
        sendTest.removeAttribute("aria-disabled");
        sendTest.classList.remove("busy");
        sendTest.textContent = label;
      }
    });
  }

  // The live preview: what the receiver would get for the form as it stands.
  const preview = $("#preview");
  let timer = null;
  let seq = 0;
  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(updatePreview, 250);
  }
  async function updatePreview() {
    const data = new FormData(form);
    const q = new URLSearchParams();
    for (const name of ["trigger", "method", "content_type", "time_zone", "url", "header_key", "header_value",
      "payload", "body_key", "body_value", "time_format"]) {
      for (const v of data.getAll(name)) q.append(name, v);
    }
    const mine = ++seq;
    try {
      const r = await fetch(preview.dataset.url + "?" + q.toString());
      if (r.ok && mine === seq) preview.innerHTML = await r.text();
    } catch {
      // Offline or signed out: keep the last preview.
    }
  }
  form.addEventListener("input", (e) => { if (e.target.matches("[data-preview]")) schedulePreview(); });
  form.addEventListener("change", (e) => { if (e.target.matches("[data-preview]")) schedulePreview(); });
  if (zone) schedulePreview();
})();
