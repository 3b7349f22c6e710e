// ferry ui: the page. Plain JavaScript, no build step, no outside resources.
// Every text comes from the server (/api/strings) in the chosen language; every
// job is a ferry command line built and checked by the server, shown as it runs.
"use strict";

let T = {};              // strings of the chosen language
let STATE = {};          // /api/state
let BUNDLES = [];        // /api/bundles
let TRUST_ERROR = null;  // the trust file of cfg.yaml could not be read
let screen = "save";
let events = null;       // the EventSource of the Progress screen and job bar
let followJob = null;    // a job chosen in History; null follows the current one
let lastSnapshot = null;
let previewTimer = null;

const SCREENS = ["save", "upload", "sync", "verify", "copy", "progress", "bundles", "history", "registries"];

// ---------- small helpers ----------

// Builds an element; text is always set as text (names from registries and
// bundles are never parsed as HTML).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else if (k === "width") el.style.width = v;
    else if (k === "bg") el.style.background = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function t(key, ...args) {
  let s = T[key] || key;
  args.forEach((a, i) => { s = s.split("{" + i + "}").join(String(a)); });
  return s;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (hh) return hh + "h " + mm + "m";
  if (mm) return mm + "m " + ss + "s";
  return ss + "s";
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    const msg = data && data.errors && data.errors[0] ? data.errors[0].message : (text || resp.statusText);
    throw new Error(msg);
  }
  return data;
}

function badge(state) {
  return h("span", { class: "badge " + state, "data-state": state }, t("state." + state));
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

function main() { return clear(document.getElementById("main")); }

function field(label, input, hint) {
  return h("div", {}, h("label", {}, label, hint ? h("span", { class: "hint" }, "  " + hint) : null), input);
}

function select(id, options, value) {
  return h("select", { id }, options.map(([v, text]) =>
    h("option", { value: v, selected: v === value ? "selected" : null }, text)));
}

function bundleLabel(b) {
  return b.name + "  (" + t(b.kind === "full" ? "bundles.full" : "bundles.incremental") + ", " +
    t("bundles.images_n", b.images.length) + ", " + bytes(b.data_bytes) + ")";
}

// ---------- start ----------

async function loadStrings(lang) {
  T = await api("/api/strings?lang=" + lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.getElementById("lang-en").classList.toggle("active", lang === "en");
  document.getElementById("lang-zh").classList.toggle("active", lang === "zh");
}

async function setLang(lang) {
  localStorage.setItem("ferry-ui-lang", lang);
  await api("/api/lang", { lang });
  await loadStrings(lang);
  STATE = await api("/api/state");
  renderNav();
  show(screen);
}

function renderNav() {
  const nav = clear(document.getElementById("nav"));
  for (const s of SCREENS) {
    nav.append(h("button", { type: "button", id: "nav-" + s, class: s === screen ? "active" : null, onclick: () => show(s) }, t("nav." + s)));
  }
  document.getElementById("footer").textContent = t("footer", STATE.version, STATE.out);
}

async function start() {
  // The token has done its work (it is in a cookie now): keep it out of the
  // address bar, history and screenshots.
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname + location.hash);
  STATE = await api("/api/state");
  const lang = localStorage.getItem("ferry-ui-lang") || STATE.lang;
  if (lang !== STATE.lang) await api("/api/lang", { lang });
  await loadStrings(lang);
  STATE = await api("/api/state");
  document.getElementById("lang-en").onclick = () => setLang("en");
  document.getElementById("lang-zh").onclick = () => setLang("zh");
  const wanted = location.hash.replace("#", "");
  // A reload while a job runs goes back to it.
  screen = SCREENS.includes(wanted) ? wanted : (STATE.running ? "progress" : "save");
  renderNav();
  connectEvents();
  show(screen);
}

async function show(s) {
  screen = s;
  if (location.hash !== "#" + s) history.replaceState(null, "", "#" + s);
  document.querySelectorAll("nav button").forEach(b => b.classList.toggle("active", b.id === "nav-" + s));
  try {
    if (["save", "upload", "verify", "bundles"].includes(s)) {
      const listed = await api("/api/bundles");
      BUNDLES = listed.bundles;
      TRUST_ERROR = listed.trust_error;
    }
    if (s === "save") return renderSave();
    if (s === "upload") return renderUpload();
    if (s === "sync") return renderSync();
    if (s === "verify") return renderVerify();
    if (s === "copy") return renderCopy();
    if (s === "progress") return renderProgress();
    if (s === "bundles") return renderBundles();
    if (s === "history") return renderHistory();
    if (s === "registries") return renderRegistries();
  } catch (e) {
    main().append(h("p", { class: "error" }, e.message));
  }
}

// ---------- job forms ----------

// The command preview and the start button shared by every job form.
function jobActions(collect, startLabel) {
  const cmd = h("div", { class: "cmd", id: "command" }, "…");
  const err = h("div", { class: "error", id: "form-error" });
  const btn = h("button", { type: "button", class: "primary", id: "start" }, startLabel);
  const refresh = () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      let form;
      try { form = collect(); } catch (e) { cmd.textContent = "…"; return; }
      // The command names the list file, not its lines: an empty list still shows
      // the command it will be (the check for an empty list comes at start).
      if (typeof form.list === "string" && !form.list.trim()) form = Object.assign({}, form, { list: "example" });
      try {
        const r = await api("/api/jobs/preview", form);
        cmd.textContent = r.command; err.textContent = "";
      } catch (e) { cmd.textContent = "…"; err.textContent = e.message; }
    }, 250);
  };
  btn.onclick = async () => {
    err.textContent = "";
    btn.disabled = true;
    try {
      const form = collect();
      const r = await api("/api/jobs", form);
      followJob = null;
      lastSnapshot = null;
      connectEvents();
      show("progress");
      return r;
    } catch (e) {
      err.textContent = e.message;
    } finally {
      btn.disabled = false;
    }
  };
  const box = h("div", {},
    h("div", { class: "cmdlabel" }, t("form.command")), cmd,
    h("div", { class: "actions" }, btn, err));
  setTimeout(refresh, 0);
  return { box, refresh };
}

function watchInputs(container, refresh) {
  container.addEventListener("input", refresh);
  container.addEventListener("change", refresh);
}

function val(id) { const el = document.getElementById(id); return el ? el.value : ""; }
function checked(id) { const el = document.getElementById(id); return !!(el && el.checked); }

function listInput(id, placeholder) {
  const area = h("textarea", { id, placeholder, spellcheck: "false" });
  const file = h("input", { type: "file", id: id + "-file", accept: ".txt,.list,.lst,text/plain" });
  file.onchange = () => {
    const f = file.files[0];
    if (!f) return;
    const reader = new FileReader();
    reader.onload = () => { area.value = reader.result; area.dispatchEvent(new Event("input", { bubbles: true })); };
    reader.readAsText(f);
  };
  return h("div", {}, area, h("div", { class: "small muted" }, t("form.list_file"), " ", file));
}

function sourceSelect() {
  const opts = [["", t("save.src_none")]].concat((STATE.sources || []).map(n => [n, n]));
  return select("src", opts, "");
}

function targetInput(id) {
  const list = h("datalist", { id: id + "-names" }, (STATE.targets || []).map(n => h("option", { value: n })));
  const input = h("input", { type: "text", id, list: id + "-names", placeholder: t("form.dst_placeholder"),
    value: (STATE.targets || [])[0] || "" });
  return h("div", {}, input, list);
}

function renderSave(preset) {
  const m = main();
  m.append(h("h1", {}, t("save.title")));
  m.append(h("div", { class: "intro", id: "intro" },
    h("strong", {}, t("save.intro")),
    h("ol", {}, h("li", {}, t("save.step1")), h("li", {}, t("save.step2")), h("li", {}, t("save.step3", STATE.out)))));
  const card = h("div", { class: "card" });
  card.append(field(t("save.list"), listInput("list", t("save.list_placeholder")), t("save.list_hint")));
  card.append(h("div", { class: "row" },
    field(t("save.src"), sourceSelect(), t("save.src_hint")),
    h("div", {},
      h("label", {}, t("save.mode")),
      h("label", { class: "inline" }, h("input", { type: "radio", name: "mode", id: "mode-full", value: "full", checked: !preset }), t("save.full")),
      h("label", { class: "inline" }, h("input", { type: "radio", name: "mode", id: "mode-inc", value: "inc", checked: !!preset, disabled: BUNDLES.length ? null : "disabled" }), t("save.incremental")),
      h("div", { id: "base-box", hidden: preset ? null : "hidden" },
        field(t("save.base"), select("base", BUNDLES.map(b => [b.path, bundleLabel(b)]), preset || ""), t("save.base_hint"))),
      BUNDLES.length ? null : h("div", { class: "small muted" }, t("save.no_bases")))));
  const more = h("details", { id: "more" }, h("summary", {}, t("form.more")),
    h("div", { class: "row" },
      field(t("save.files"), h("input", { type: "number", id: "files", min: "1", max: "1000", placeholder: "2" }), t("save.files_hint")),
      field(t("save.max_file_size"), h("input", { type: "text", id: "max_file_size", placeholder: "4G" }), t("save.max_file_size_hint")),
      field(t("save.compress"), select("compress", [["", t("save.compress_default")], ["none", t("save.compress_none")], ["zstd", "zstd"]], ""))),
    h("div", { class: "row" },
      field(t("form.platform"), h("input", { type: "text", id: "platform", placeholder: "linux/amd64,linux/arm64" }), t("form.platform_hint")),
      field(t("save.prefix"), h("input", { type: "text", id: "prefix", placeholder: "img" })),
      field(t("save.sign"), h("input", { type: "text", id: "sign", placeholder: "~/.ssh/ferry_ed25519" }), t("save.sign_hint"))),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "referrers" }), t("form.referrers")));
  card.append(more);
  const collect = () => ({
    kind: "save", list: val("list"), src: val("src"),
    bases: checked("mode-inc") && val("base") ? [val("base")] : [],
    files: val("files"), max_file_size: val("max_file_size"), compress: val("compress"),
    platform: val("platform"), referrers: checked("referrers"), prefix: val("prefix"), sign: val("sign"),
  });
  const { box, refresh } = jobActions(collect, t("save.start"));
  card.append(box);
  m.append(card);
  watchInputs(card, refresh);
  card.addEventListener("change", () => {
    document.getElementById("base-box").hidden = !checked("mode-inc");
  });
}

function bundlePicker(id, preset) {
  if (!BUNDLES.length) return h("div", { class: "muted" }, t("bundles.none", STATE.out));
  return select(id, BUNDLES.map(b => [b.path, bundleLabel(b)]), preset || BUNDLES[0].path);
}

function renderUpload(preset) {
  const m = main();
  m.append(h("h1", {}, t("upload.title")));
  m.append(h("p", { class: "muted" }, t("upload.intro")));
  const card = h("div", { class: "card" });
  card.append(field(t("form.bundle"), bundlePicker("meta", preset)));
  card.append(field(t("form.dst"), targetInput("dst"), t("form.dst_hint")));
  card.append(field(t("upload.verify"), select("verify", [["full", t("upload.verify_full")], ["size", t("upload.verify_size")]], "full")));
  // A bundle that lacks images which failed at save time is refused unless the
  // operator says to push what it has.
  const partial = h("div", { id: "partial-box" });
  const showPartial = () => {
    const b = BUNDLES.find(x => x.path === val("meta"));
    const failed = b ? b.failed : [];
    clear(partial);
    if (!failed.length) return;
    partial.append(h("p", { class: "error" }, t("upload.lacks", failed.length)),
      h("ul", { class: "small" }, failed.map(([r, why]) => h("li", {}, h("span", { class: "mono" }, r), ": ", why))),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "allow_partial" }), t("upload.allow_partial")));
  };
  card.append(partial);
  card.addEventListener("change", e => { if (e.target && e.target.id === "meta") showPartial(); });
  const collect = () => ({ kind: "upload", meta: val("meta"), dst: val("dst"), verify: val("verify"), allow_partial: checked("allow_partial") });
  const { box, refresh } = jobActions(collect, t("upload.start"));
  card.append(box);
  m.append(card);
  showPartial();
  watchInputs(card, refresh);
}

function renderSync() {
  const m = main();
  m.append(h("h1", {}, t("sync.title")));
  m.append(h("p", { class: "muted" }, t("sync.intro")));
  const card = h("div", { class: "card" });
  card.append(field(t("save.list"), listInput("list", t("save.list_placeholder")), t("save.list_hint")));
  card.append(h("div", { class: "row" },
    field(t("save.src"), sourceSelect(), t("save.src_hint")),
    field(t("form.dst"), targetInput("dst"), t("form.dst_hint"))));
  card.append(h("details", {}, h("summary", {}, t("form.more")),
    field(t("form.platform"), h("input", { type: "text", id: "platform", placeholder: "linux/amd64" }), t("form.platform_hint")),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "referrers" }), t("form.referrers"))));
  const collect = () => ({ kind: "sync", list: val("list"), src: val("src"), dst: val("dst"), platform: val("platform"), referrers: checked("referrers") });
  const { box, refresh } = jobActions(collect, t("sync.start"));
  card.append(box);
  m.append(card);
  watchInputs(card, refresh);
}

function renderVerify(preset) {
  const m = main();
  m.append(h("h1", {}, t("verify.title")));
  m.append(h("p", { class: "muted" }, t("verify.intro")));
  const card = h("div", { class: "card" });
  card.append(field(t("form.bundle"), bundlePicker("meta", preset)));
  card.append(h("label", { class: "inline" }, h("input", { type: "checkbox", id: "size_only" }), t("verify.size_only")));
  const collect = () => ({ kind: "verify", meta: val("meta"), size_only: checked("size_only") });
  const { box, refresh } = jobActions(collect, t("verify.start"));
  card.append(box);
  m.append(card);
  watchInputs(card, refresh);
}

function renderCopy() {
  const m = main();
  m.append(h("h1", {}, t("copy.title")));
  if (!STATE.copy_available) {
    m.append(h("div", { class: "card" }, h("p", { class: "muted" }, t("copy.unavailable"))));
    return;
  }
  m.append(h("p", { class: "muted" }, t("copy.intro")));
  const card = h("div", { class: "card" });
  card.append(field(t("copy.src"), h("input", { type: "text", id: "src", placeholder: "docker://registry.example.com/team/app:1.0" }), t("copy.src_hint")));
  card.append(field(t("copy.dst"), h("input", { type: "text", id: "dst", placeholder: "oci:/srv/layouts/app" }), t("copy.dst_hint")));
  card.append(h("details", {}, h("summary", {}, t("form.more")),
    field(t("form.platform"), h("input", { type: "text", id: "platform", placeholder: "linux/amd64" }), t("form.platform_hint")),
    h("label", { class: "inline" }, h("input", { type: "checkbox", id: "referrers" }), t("form.referrers"))));
  const collect = () => ({ kind: "copy", src: val("src"), dst: val("dst"), platform: val("platform"), referrers: checked("referrers") });
  const { box, refresh } = jobActions(collect, t("copy.start"));
  card.append(box);
  m.append(card);
  watchInputs(card, refresh);
}

// ---------- progress ----------

function connectEvents() {
  if (events) events.close();
  events = new EventSource("/api/events" + (followJob ? "?job=" + followJob : ""));
  events.addEventListener("job", ev => {
    lastSnapshot = JSON.parse(ev.data);
    renderJobBar();
    if (screen === "progress") renderProgressInto(lastSnapshot);
  });
}

function renderJobBar() {
  const bar = document.getElementById("jobbar");
  const s = lastSnapshot;
  const running = s && s.job && (s.job.state === "running" || s.job.state === "queued");
  if (!running || screen === "progress") { bar.hidden = true; return; }
  const top = (s.bars || []).find(b => b.bytes && !b.per_file && !b.finished);
  clear(bar).append(badge(s.job.state), h("span", {}, s.job.title),
    top ? h("div", { class: "bar mini" }, h("div", { width: pct(top) + "%" })) : null,
    h("button", { type: "button", class: "secondary small", onclick: () => show("progress") }, t("progress.show")));
  bar.hidden = false;
}

function pct(b) { return b.length ? Math.min(100, (100 * b.position / b.length)) : (b.finished ? 100 : 0); }

function renderProgress() {
  const m = main();
  m.append(h("h1", {}, t("progress.title")));
  m.append(h("div", { id: "progress" }, h("p", { class: "muted" }, "…")));
  document.getElementById("jobbar").hidden = true;
  if (lastSnapshot) renderProgressInto(lastSnapshot);
}

function barRow(b, big) {
  const figures = b.bytes
    ? bytes(b.position) + " / " + bytes(b.length) + (b.finished ? "" : "  " + bytes(b.rate) + "/s")
    : b.position + " / " + b.length;
  return h("div", { class: "barrow" },
    h("div", { class: "label", title: b.label }, b.label),
    h("div", { class: "bar" + (big ? " big" : "") + (b.finished || pct(b) >= 100 ? " done" : "") }, h("div", { width: pct(b) + "%" })),
    h("div", { class: "figs" }, figures));
}

function renderProgressInto(s) {
  const box = document.getElementById("progress");
  if (!box) return;
  const logEl = document.getElementById("log");
  const stick = !logEl || logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 20;
  clear(box);
  if (!s.job) {
    box.append(h("div", { class: "empty" }, t("progress.none"), " ",
      h("button", { type: "button", class: "primary", onclick: () => show("save") }, t("nav.save"))));
    return;
  }
  const j = s.job;
  const active = j.state === "running" || j.state === "queued";
  box.append(h("div", { class: "card" },
    h("div", { class: "bundle-head" },
      h("div", {}, h("span", { class: "name", id: "job-title" }, "#" + j.id + "  " + j.title), "  ", h("span", { id: "job-state" }, badge(j.state))),
      h("div", {}, active ? h("button", { type: "button", class: "danger", id: "cancel", onclick: async () => {
        if (!confirm(t("progress.cancel_confirm"))) return;
        try { await api("/api/jobs/" + j.id + "/cancel", {}); } catch (e) { alert(e.message); }
      } }, t("progress.cancel")) : h("button", { type: "button", class: "secondary", id: "again", onclick: () => runAgain(j.id) }, t("progress.again")))),
    h("div", { class: "cmdlabel" }, t("form.command")), h("div", { class: "cmd" }, j.command),
    j.error ? h("p", { class: "error", id: "job-error" }, j.error) : null,
    j.state === "cancelled" ? h("p", { class: "muted" }, t("progress.resumable")) : null));

  const bars = s.bars || [];
  const phases = bars.filter(b => !b.per_file);
  const files = bars.filter(b => b.per_file);
  const top = [...phases].reverse().find(b => b.bytes) || null;
  const card = h("div", { class: "card", id: "bars" });
  if (top) {
    card.append(h("div", { class: "stats" },
      stat(t("progress.done"), pct(top).toFixed(0) + " %", "stat-percent"),
      stat(t("progress.bytes"), bytes(top.position) + " / " + bytes(top.length)),
      stat(t("progress.speed"), top.finished ? "–" : bytes(top.rate) + "/s", "stat-speed"),
      stat(t("progress.eta"), top.finished ? "–" : duration(top.eta_seconds), "stat-eta")));
  }
  if (!bars.length) card.append(h("p", { class: "muted" }, active ? t("progress.starting") : t("progress.no_bars")));
  phases.forEach(b => card.append(barRow(b, b === top)));
  if (files.length) {
    card.append(h("h2", {}, t("progress.files")));
    files.forEach(b => card.append(barRow(b, false)));
  }
  box.append(card);

  if (s.summary) box.append(summaryCard(s.summary));

  const images = s.images || [];
  if (images.length) {
    const counts = {};
    images.forEach(i => { counts[i.state] = (counts[i.state] || 0) + 1; });
    box.append(h("div", { class: "card" },
      h("h2", {}, t("progress.images"), "  ", h("span", { class: "muted small" },
        Object.entries(counts).map(([k, v]) => t("state." + k) + " " + v).join(" · "))),
      h("table", { id: "images" },
        h("tr", {}, h("th", {}, t("col.image")), h("th", {}, t("col.state")), h("th", {}, t("col.reason"))),
        images.map(i => h("tr", { "data-ref": i.reference },
          h("td", { class: "mono" }, i.reference), h("td", {}, badge(i.state)), h("td", { class: "error" }, i.reason || ""))))));
  }
  const log = h("div", { class: "log", id: "log" }, (s.log || []).map(l =>
    h("div", { class: l.warning ? "w" : null }, h("span", { class: "t" }, l.time + " "), l.text)));
  box.append(h("div", { class: "card" }, h("h2", {}, t("progress.log")), log));
  if (stick) log.scrollTop = log.scrollHeight;
  if ((s.queue || []).length) {
    box.append(h("div", { class: "card" }, h("h2", {}, t("progress.queue")),
      h("ul", {}, s.queue.map(q => h("li", {}, "#" + q.id + "  " + q.title)))));
  }
}

function stat(k, v, id) {
  return h("div", { class: "stat" }, h("div", { class: "v", id: id || null }, v), h("div", { class: "k" }, k));
}

function summaryCard(sum) {
  const failures = (sum.failed || []).concat(sum.invalid || []);
  return h("div", { class: "card", id: "summary" },
    h("h2", {}, t("progress.summary")),
    h("div", { class: "stats" },
      stat(t("summary.total"), sum.total),
      stat(t("summary.succeeded"), sum.succeeded),
      stat(t("summary.failed"), failures.length),
      stat(t("summary.bytes"), bytes(sum.bytes)),
      stat(t("summary.time"), duration(sum.seconds))),
    failures.length ? h("table", { class: "failures" },
      h("tr", {}, h("th", {}, t("col.image")), h("th", {}, t("col.reason"))),
      failures.map(([r, why]) => h("tr", {}, h("td", { class: "mono" }, r), h("td", { class: "error" }, why)))) : null);
}

// ---------- bundles ----------

function renderBundles() {
  const m = main();
  m.append(h("div", { class: "bundle-head" }, h("h1", {}, t("bundles.title")),
    h("span", { class: "muted" }, t("bundles.folder", STATE.out))));
  if (TRUST_ERROR) m.append(h("p", { class: "error" }, TRUST_ERROR));
  if (!BUNDLES.length) {
    m.append(h("div", { class: "card empty" }, t("bundles.none", STATE.out), " ",
      h("button", { type: "button", class: "primary", onclick: () => show("save") }, t("nav.save"))));
    return;
  }
  const byName = {};
  BUNDLES.forEach(b => { byName[b.name] = b; });
  BUNDLES.forEach((b, i) => m.append(bundleCard(b, byName, i === 0)));
}

function chain(b, byName) {
  // Oldest base first, this bundle last.
  const nodes = [];
  const seen = new Set();
  let cur = b;
  let guard = 0;
  while (cur && cur.bases && cur.bases.length && guard++ < 20) {
    const base = cur.bases[0];
    if (seen.has(base.name)) break;
    seen.add(base.name);
    const found = base.path ? byName[base.name] : null;
    nodes.unshift({ name: base.name, missing: !base.path, mismatch: base.path && !base.matches });
    cur = found;
  }
  const out = h("div", { class: "chain" });
  nodes.forEach(n => {
    out.append(h("span", { class: "node" + (n.missing ? " missing" : ""), title: n.missing ? t("bundles.base_missing") : (n.mismatch ? t("bundles.base_mismatch") : "") },
      n.name, n.missing ? " ?" : (n.mismatch ? " ≠" : "")), h("span", { class: "arrow" }, "→"));
  });
  out.append(h("span", { class: "node me" }, b.name));
  return out;
}

const PALETTE = ["#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#ec4899", "#84cc16", "#0ea5e9", "#a855f7"];

function bytesChart(b) {
  const c = b.chart;
  const parts = [];
  if (c.in_bases) parts.push([t("chart.bases"), c.in_bases, "var(--base)"]);
  if (c.shared) parts.push([t("chart.shared"), c.shared, "var(--shared)"]);
  c.own.forEach(([ref, n], i) => { if (n) parts.push([t("chart.own", ref), n, PALETTE[i % PALETTE.length]]); });
  if (c.other) parts.push([t("chart.other"), c.other, "var(--other)"]);
  const total = parts.reduce((a, p) => a + p[1], 0) || 1;
  return h("div", { class: "bytes-chart" },
    h("div", { class: "chart", role: "img", "aria-label": t("chart.title") },
      parts.map(([label, n, color]) => h("div", { width: (100 * n / total) + "%", bg: color, title: label + ": " + bytes(n) }))),
    h("div", { class: "legend" }, parts.map(([label, n, color]) =>
      h("span", {}, h("span", { class: "sw", bg: color }), label + "  " + bytes(n)))));
}

function bundleCard(b, byName, open) {
  const sig = b.signature || { state: "unsigned", detail: "", trusted: false };
  const failed = b.failed || [];
  const card = h("div", { class: "card bundle", "data-name": b.name });
  card.append(h("div", { class: "bundle-head" },
    h("div", {}, h("span", { class: "name" }, b.name), "  ",
      h("span", { class: "badge" }, t(b.kind === "full" ? "bundles.full" : "bundles.incremental")), "  ",
      h("span", { class: "badge " + sig.state, title: sig.detail }, t(sig.state === "signed" && sig.trusted ? "sig.trusted" : "sig." + sig.state)),
      failed.length ? h("span", {}, "  ", h("span", { class: "badge failed" }, t("bundles.failed_n", failed.length))) : null),
    h("div", { class: "muted small" }, b.created.replace("T", " ").slice(0, 19) + " · " + bytes(b.data_bytes) + " · " + t("bundles.images_n", b.images.length) + " · " + t("bundles.files_n", b.files.length))));
  card.append(h("div", { class: "small muted mono" }, b.path));
  if (b.problem) card.append(h("p", { class: "error" }, b.problem));
  card.append(h("h2", {}, t("bundles.chain")), b.bases.length ? chain(b, byName) : h("p", { class: "small muted" }, t("bundles.no_bases")));
  card.append(h("h2", {}, t("chart.title")), bytesChart(b));
  const details = h("details", { open: open ? "open" : null }, h("summary", {}, t("bundles.details")));
  details.append(h("h2", {}, t("progress.images")), h("table", { class: "bundle-images" },
    h("tr", {}, h("th", {}, t("col.image")), h("th", {}, t("col.digest")), h("th", { class: "num" }, t("col.size")),
      h("th", { class: "num" }, t("col.own")), h("th", { class: "num" }, t("col.shared")), h("th", { class: "num" }, t("col.in_bases"))),
    b.images.map(i => h("tr", {},
      h("td", { class: "mono" }, i.reference, i.target ? h("div", { class: "muted" }, "→ " + i.target) : null,
        i.platforms.length ? h("div", { class: "muted small" }, i.platforms.join(" ")) : null,
        i.referrers ? h("div", { class: "muted small" }, t("bundles.referrers_n", i.referrers)) : null),
      h("td", { class: "mono small", title: i.digest }, i.digest.slice(0, 19) + "…"),
      h("td", { class: "num" }, bytes(i.total)), h("td", { class: "num" }, bytes(i.own)),
      h("td", { class: "num" }, bytes(i.shared)), h("td", { class: "num" }, bytes(i.in_bases))))));
  if (failed.length) {
    details.append(h("h2", {}, t("bundles.failures")), h("table", { class: "failures" },
      h("tr", {}, h("th", {}, t("col.image")), h("th", {}, t("col.reason"))),
      failed.map(([r, why]) => h("tr", {}, h("td", { class: "mono" }, r), h("td", { class: "error" }, why)))));
  }
  details.append(h("h2", {}, t("bundles.files")), h("table", {},
    h("tr", {}, h("th", {}, t("col.file")), h("th", { class: "num" }, t("col.size")), h("th", {}, "")),
    b.files.map(f => h("tr", {}, h("td", { class: "mono" }, f.name), h("td", { class: "num" }, bytes(f.size)),
      h("td", {}, f.present ? "" : h("span", { class: "badge failed" }, t("bundles.file_missing")))))));
  if (sig.detail) details.append(h("p", { class: "small muted" }, t("bundles.signature") + ": " + sig.detail));
  card.append(details);
  const exportDir = STATE.out.replace(/\/$/, "") + "/export/" + b.name;
  card.append(h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary act-verify", onclick: () => startJob({ kind: "verify", meta: b.path, size_only: false }) }, t("bundles.verify")),
    h("button", { type: "button", class: "secondary act-upload", onclick: () => { screen = "upload"; history.replaceState(null, "", "#upload"); renderNavActive(); renderUpload(b.path); } }, t("bundles.upload")),
    h("button", { type: "button", class: "secondary act-export", onclick: () => {
      const dir = prompt(t("bundles.export_prompt"), exportDir);
      if (dir) startJob({ kind: "export", meta: b.path, oci: dir });
    } }, t("bundles.export")),
    h("button", { type: "button", class: "secondary act-sign", onclick: () => {
      const key = prompt(t("bundles.sign_prompt"), "");
      if (key !== null) startJob({ kind: "sign", meta: b.path, key });
    } }, t("bundles.sign")),
    h("button", { type: "button", class: "secondary act-base", onclick: () => { screen = "save"; history.replaceState(null, "", "#save"); renderNavActive(); renderSave(b.path); } }, t("bundles.as_base"))));
  return card;
}

function renderNavActive() {
  document.querySelectorAll("nav button").forEach(b => b.classList.toggle("active", b.id === "nav-" + screen));
}

async function startJob(form) {
  try {
    await api("/api/jobs", form);
    followJob = null;
    lastSnapshot = null;
    connectEvents();
    show("progress");
  } catch (e) { alert(e.message); }
}

async function runAgain(id) {
  try {
    await api("/api/jobs/" + id + "/again", {});
    followJob = null;
    lastSnapshot = null;
    connectEvents();
    show("progress");
  } catch (e) { alert(e.message); }
}

// ---------- history ----------

async function renderHistory() {
  const jobs = (await api("/api/jobs")).jobs;
  const m = main();
  m.append(h("h1", {}, t("history.title")));
  if (!jobs.length) { m.append(h("div", { class: "card empty" }, t("history.none"))); return; }
  const table = h("table", { id: "history" },
    h("tr", {}, h("th", {}, "#"), h("th", {}, t("col.job")), h("th", {}, t("col.state")), h("th", {}, t("col.started")),
      h("th", {}, t("col.finished")), h("th", {}, t("col.result")), h("th", {}, "")));
  for (const j of jobs) {
    const failures = j.summary ? (j.summary.failed.length + j.summary.invalid.length) : (j.images || []).filter(i => i.state === "failed").length;
    const result = j.summary ? t("history.result", j.summary.succeeded, j.summary.total, failures, bytes(j.summary.bytes)) : (j.error || "");
    const over = !["queued", "running"].includes(j.state);
    const row = h("tr", { "data-job": j.id },
      h("td", {}, j.id), h("td", {}, j.title), h("td", {}, badge(j.state)),
      h("td", { class: "small" }, j.started_at || j.queued_at), h("td", { class: "small" }, j.finished_at || ""),
      h("td", { class: failures || j.error ? "error small" : "small" }, result),
      h("td", {}, h("button", { type: "button", class: "secondary small act-details", onclick: () => toggleDetail(row, j.id) }, t("history.details")),
        " ", h("button", { type: "button", class: "secondary small", onclick: () => { followJob = j.id; lastSnapshot = null; connectEvents(); show("progress"); } }, t("history.progress")),
        over ? h("span", {}, " ", h("button", { type: "button", class: "secondary small", onclick: () => runAgain(j.id) }, t("progress.again"))) : null));
    table.append(row);
  }
  m.append(h("div", { class: "card" }, table));
}

async function toggleDetail(row, id) {
  const next = row.nextSibling;
  if (next && next.classList && next.classList.contains("detail")) { next.remove(); return; }
  const j = await api("/api/jobs/" + id);
  const failures = (j.images || []).filter(i => i.state === "failed");
  const cell = h("td", { colspan: "7" },
    h("div", { class: "cmdlabel" }, t("form.command")), h("div", { class: "cmd" }, j.command),
    j.error ? h("p", { class: "error" }, j.error) : null,
    j.summary ? summaryCard(j.summary) : (failures.length ? h("table", { class: "failures" },
      failures.map(i => h("tr", {}, h("td", { class: "mono" }, i.reference), h("td", { class: "error" }, i.reason || "")))) : null),
    (j.log_tail || []).length ? h("div", { class: "log" }, j.log_tail.map(l => h("div", { class: l.warning ? "w" : null }, h("span", { class: "t" }, l.time + " "), l.text))) : null);
  row.after(h("tr", { class: "detail" }, cell));
}

// ---------- registries ----------

async function renderRegistries(editing) {
  const r = await api("/api/registries");
  const m = main();
  m.append(h("h1", {}, t("reg.title")));
  m.append(h("p", { class: "muted" }, r.exists ? t("reg.file", r.path) : t("reg.nofile", r.path)));
  if (r.error) m.append(h("p", { class: "error" }, r.error));
  for (const [kind, list] of [["source", r.sources], ["target", r.targets]]) {
    const card = h("div", { class: "card", id: "reg-" + kind });
    card.append(h("div", { class: "bundle-head" }, h("h2", {}, t("reg." + kind + "s")),
      h("button", { type: "button", class: "secondary small", id: "add-" + kind, onclick: () => editEntry(kind, null) }, t("reg.add"))));
    card.append(h("p", { class: "small muted" }, t("reg." + kind + "_hint")));
    if (!list.length) card.append(h("p", { class: "muted" }, t("reg.empty")));
    else card.append(h("table", {},
      h("tr", {}, h("th", {}, t("reg.name")), h("th", {}, t("reg.registry")), h("th", {}, t("reg.user")), h("th", {}, t("reg.password")),
        kind === "target" ? h("th", {}, t("reg.repository")) : null, h("th", {}, "")),
      list.map(e => {
        const result = h("div", { class: "small test-result" });
        return h("tr", { "data-name": e.name },
          h("td", {}, e.name), h("td", { class: "mono" }, e.registry, e.insecure ? h("div", { class: "small muted" }, t("reg.insecure")) : null),
          h("td", {}, e.user || h("span", { class: "muted" }, t("reg.anonymous"))),
          h("td", {}, e.password === "none" ? "–" : (e.password === "env" ? "${" + e.password_vars.join("}, ${") + "}" : "••••••")),
          kind === "target" ? h("td", { class: "mono" }, e.repository || "") : null,
          h("td", {},
            h("button", { type: "button", class: "secondary small test", onclick: async () => {
              result.className = "small test-result muted"; result.textContent = t("reg.testing");
              try {
                const res = await api("/api/registries/test", entryForm(kind, e));
                result.className = "small test-result " + (res.ok ? "okmsg" : "error"); result.textContent = res.message;
              } catch (err) { result.className = "small test-result error"; result.textContent = err.message; }
            } }, t("reg.test")), " ",
            h("button", { type: "button", class: "secondary small", onclick: () => editEntry(kind, e) }, t("reg.edit")), " ",
            h("button", { type: "button", class: "danger small", onclick: async () => {
              if (!confirm(t("reg.delete_confirm", e.name))) return;
              try { await api("/api/registries/delete", { kind, index: e.index, name: e.name }); renderRegistries(); } catch (err) { alert(err.message); }
            } }, t("reg.delete")),
            result));
      })));
    m.append(card);
  }
  m.append(h("div", { id: "reg-form" }));
}

function entryForm(kind, e) {
  return { kind, index: e.index, name: e.name_set || "", registry: e.registry, user: e.user || "", password: "",
    repository: e.repository || "", insecure: e.insecure, ca: e.ca || "" };
}

function editEntry(kind, e) {
  const box = clear(document.getElementById("reg-form"));
  const msg = h("div", { class: "small", id: "reg-msg" });
  const form = h("div", { class: "card", id: "entry-form" },
    h("h2", {}, e ? t("reg.edit_title", e.name) : t("reg.add_title." + kind)),
    h("div", { class: "row" },
      field(t("reg.registry"), h("input", { type: "text", id: "e-registry", value: e ? e.registry : "", placeholder: "https://registry.example.com:5000" }), t("reg.registry_hint")),
      field(t("reg.name"), h("input", { type: "text", id: "e-name", value: e ? (e.name_set || "") : "", placeholder: t("reg.name_placeholder") }), t("reg.name_hint"))),
    h("div", { class: "row" },
      field(t("reg.user"), h("input", { type: "text", id: "e-user", value: e ? (e.user || "") : "", autocomplete: "off" })),
      field(t("reg.password"), h("input", { type: "password", id: "e-password", value: "", autocomplete: "new-password",
        placeholder: e && e.password !== "none" ? t("reg.password_keep") : "" }), t("reg.password_hint"))),
    kind === "target" ? field(t("reg.repository"), h("input", { type: "text", id: "e-repository", value: e ? (e.repository || "") : "" }), t("reg.repository_hint")) : null,
    h("details", {}, h("summary", {}, t("form.more")),
      field(t("reg.ca"), h("input", { type: "text", id: "e-ca", value: e ? (e.ca || "") : "", placeholder: "/etc/ssl/registry-ca.pem" })),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "e-insecure", checked: e && e.insecure }), t("reg.insecure_label")),
      e && e.password !== "none" ? h("label", { class: "inline" }, h("input", { type: "checkbox", id: "e-clear" }), t("reg.clear_password")) : null));
  const collect = () => ({ kind, index: e ? e.index : null, name: val("e-name"), registry: val("e-registry"), user: val("e-user"),
    password: val("e-password"), clear_password: checked("e-clear"), repository: val("e-repository"), insecure: checked("e-insecure"), ca: val("e-ca") });
  form.append(h("div", { class: "actions" },
    h("button", { type: "button", class: "primary", id: "e-save", onclick: async () => {
      try { await api("/api/registries", collect()); STATE = await api("/api/state"); renderRegistries(); }
      catch (err) { msg.className = "small error"; msg.textContent = err.message; }
    } }, t("reg.save")),
    h("button", { type: "button", class: "secondary", id: "e-test", onclick: async () => {
      msg.className = "small muted"; msg.textContent = t("reg.testing");
      try { const res = await api("/api/registries/test", collect()); msg.className = "small " + (res.ok ? "okmsg" : "error"); msg.textContent = res.message; }
      catch (err) { msg.className = "small error"; msg.textContent = err.message; }
    } }, t("reg.test")),
    h("button", { type: "button", class: "secondary", onclick: () => clear(box) }, t("reg.cancel")), msg));
  box.append(form);
  form.scrollIntoView();
}

start().catch(e => { document.getElementById("main").textContent = e.message; });
