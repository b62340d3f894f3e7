// hyperscout ui: draws the pages from the app's JSON and applies live deltas (server-sent events).
// No framework: one EventSource per page, plotly for figures, tables rendered a page at a time.
"use strict";
(() => {
  const $ = (s, r = document) => r.querySelector(s);
  const body = document.body;
  const STATIC = body.dataset.static === "1";
  const CSRF = body.dataset.csrf || "";
  const COLORS = { completed: "#1f77b4", running: "#2ca02c", pending: "#9467bd", pruned: "#ff7f0e",
                   failed: "#d62728", aborted: "#7f7f7f" };
  const VIRIDIS = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"];
  const PLOT_CFG = { displaylogo: false, responsive: true };
  const GL = () => (window.HS_GL_AT || 4000);  // points above which scatter plots use WebGL
  const POINTS = () => (window.HS_POINTS || 2000);  // points above which a scatter plot draws a sample
  const HS = (window.__hs = { flushes: 0, renders: [], plots: {}, deltas: 0, errors: [], marks: {} });
  const markT = (k) => { if (!(k in HS.marks)) HS.marks[k] = Math.round(performance.now()); };

  // -- small helpers
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v; else if (k === "cls") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      if (!isFinite(v)) return String(v);
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return (a !== 0 && (a < 1e-3 || a >= 1e6)) ? v.toExponential(3) : String(+v.toPrecision(5));
    }
    if (Array.isArray(v)) return v.map(fmt).join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
  function dur(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return m < 60 ? `${m}m ${String(r).padStart(2, "0")}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  }
  function banner(text) { const b = $("#banner"); if (!b) return; b.textContent = text; b.hidden = !text; }
  function notice() {
    const n = new URLSearchParams(location.search).get("notice");
    if (n && !$("#notice")) banner(n);
  }
  let plotlyPromise = null;
  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyPromise) {
      plotlyPromise = new Promise((ok, fail) => {
        const s = h("script", { src: body.dataset.plotly });
        s.onload = () => { markT("plotly"); ok(window.Plotly); };
        s.onerror = () => fail(new Error("plotly.js did not load"));
        document.head.append(s);
      });
    }
    return plotlyPromise;
  }
  function stream(url, handlers) {
    // one EventSource per page; re-created with backoff when the server refused a reconnect (readyState CLOSED)
    let es = null, wait = 500;
    const connect = () => {
      es = new EventSource(url());
      for (const [name, fn] of Object.entries(handlers)) {
        es.addEventListener(name, (e) => { wait = 500; banner(""); fn(JSON.parse(e.data)); });
      }
      es.onerror = () => {
        if (es.readyState === 2) { banner("connection lost; retrying…"); setTimeout(connect, wait); wait = Math.min(wait * 2, 10000); }
      };
    };
    connect();
    window.addEventListener("pagehide", () => es && es.close());
  }
  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    const d = await r.json();
    const now = +r.headers.get("x-hs-now");  // the server's clock (a cached body's own "now" is old)
    if (now && d && typeof d === "object") d.now = now;
    return d;
  }
  function react(id, traces, layout) {
    const div = document.getElementById(id);
    if (!div) return Promise.resolve();
    const t0 = performance.now();
    const base = { margin: { l: 60, r: 20, t: 10, b: 45 }, hovermode: "closest", legend: { orientation: "h", y: -0.18 },
                   font: { size: 11 }, uirevision: "keep" };
    return window.Plotly.react(div, traces, Object.assign(base, layout), PLOT_CFG).then(() => {
      HS.plots[id] = { ms: performance.now() - t0, traces: traces.length, at: performance.now() };
      markT("plot:" + id);
    });
  }

  // -- study page ---------------------------------------------------------------------------
  function studyPage() {
    const name = $("#study").dataset.name;
    const S = { info: null, C: {}, jobs: new Map(), summary: {}, curves: new Map(), events: new Map(), importance: null,
                cursor: "", skew: 0, curveMode: "default", sort: { key: "n", dir: -1 }, page: 0, dirty: new Set(),
                flushing: false, lastRender: {}, cost: {} };
    HS.S = S;
    const col = (r, k) => r[S.C[k]];
    const primary = () => (S.info.objectives[0] || { key: "objective", sign: "min" });
    const maximize = () => primary().sign.startsWith("max");
    const live = (r) => !col(r, "sup");

    function applyRows(rows) {
      for (const r of rows) S.jobs.set(col(r, "n"), r);
    }
    function applyCurves(points) {
      for (const [n, it, v, a] of points) {
        if (n === null || n === undefined || a) continue;
        let m = S.curves.get(n);
        if (!m) S.curves.set(n, (m = new Map()));
        m.set(it, v);
      }
    }
    function applyEvents(evs) { for (const e of evs) S.events.set(e.id, e); }
    function mark(...parts) { for (const p of parts) S.dirty.add(p); schedule(); }

    // Rendering is split into one task per part, so the page stays responsive while plots draw.
    // Plots in view draw first; the others draw one per idle moment (or when scrolled to), and the
    // heavy ones re-draw at most once a second and at most every 3x their own drawing cost.
    const ORDER = ["header", "budget", "resources", "best", "table", "events", "history", "time", "parcoords",
                   "curves", "importance", "pareto", "slices", "restimeline"];
    const DIV = { history: "p-history", time: "p-time", parcoords: "p-parcoords", curves: "p-curves",
                  importance: "p-importance", pareto: "p-pareto", slices: "p-slices", restimeline: "p-resources" };
    const visible = new Set();
    if ("IntersectionObserver" in window) {
      const io = new IntersectionObserver((entries) => {
        for (const e of entries) {
          const part = Object.keys(DIV).find((k) => DIV[k] === e.target.id);
          if (e.isIntersecting) { visible.add(part); if (S.dirty.has(part)) schedule(); } else visible.delete(part);
        }
      }, { rootMargin: "150px" });
      for (const id of Object.values(DIV)) { const d = document.getElementById(id); if (d) io.observe(d); }
    } else Object.keys(DIV).forEach((k) => visible.add(k));
    HS.renderAll = () => Object.keys(DIV).forEach((k) => visible.add(k)) || mark(...Object.keys(DIV));
    function schedule() {
      if (S.flushing) return;
      S.flushing = true;
      setTimeout(flush, 0);
    }
    function ready(part) {
      if (!DIV[part]) return true;
      if (!window.Plotly) return false;
      const since = performance.now() - (S.lastRender[part] || 0);
      const cost = S.cost[part] || 0;  // live: a plot that costs more than 50 ms re-draws at most once a second
      return since >= Math.max(cost > 50 ? 1000 : 250, 3 * cost);
    }
    async function draw(part) {
      S.dirty.delete(part);
      const p0 = performance.now();
      try { await RENDER[part](); } catch (e) { HS.errors.push(`${part}: ${e}`); console.error(part, e); }
      S.cost[part] = performance.now() - p0;
      S.lastRender[part] = performance.now();
      await new Promise((ok) => setTimeout(ok, 0));  // let input and other events through
    }
    async function flush() {
      const t0 = performance.now();
      for (const part of ORDER) {
        if (S.dirty.has(part) && (!DIV[part] || visible.has(part)) && ready(part)) await draw(part);
      }
      HS.flushes += 1;
      HS.renders.push(performance.now() - t0);
      S.flushing = false;
      const pending = ORDER.filter((p) => S.dirty.has(p));
      if (!pending.length) return;
      const now = pending.filter((p) => visible.has(p) || !DIV[p]);
      if (now.length) { setTimeout(schedule, window.Plotly ? 150 : 50); return; }
      // nothing left in view: draw one off-screen plot when the page is idle
      const idle = window.requestIdleCallback || ((f) => setTimeout(f, 200));
      idle(async () => {
        if (S.flushing) return;
        // off-screen plots of a big study wait until scrolled to: one would block input for a second
        const cheap = (p) => S.jobs.size <= (window.HS_LAZY_AT ?? 2000) || (S.cost[p] !== undefined && S.cost[p] < 150);
        const part = ORDER.find((p) => S.dirty.has(p) && ready(p) && !visible.has(p) && cheap(p));
        if (part) { S.flushing = true; await draw(part); S.flushing = false; }
        if (part && ORDER.some((p) => S.dirty.has(p))) setTimeout(schedule, 200);
      }, { timeout: 1000 });
    }

    function onDelta(d) {
      HS.deltas += 1;
      if (d.reload) { location.reload(); return; }
      if (d.deleted) { banner("this study was deleted"); return; }
      if (d.error) { banner(d.error); return; }
      if (d.log !== undefined) { const p = $("#pending-log"); if (p) p.textContent += d.log; }
      if (!S.info) return;
      if (d.now) S.skew = d.now - Date.now() / 1000;
      if (d.study) { S.info = d.study; mark("header", "budget", "resources"); }
      if (d.jobs) {
        applyRows(d.jobs);
        mark("table", "history", "time", "parcoords", "slices", "restimeline", "pareto", "resources", "curves");
      }
      if (d.summary) { S.summary = d.summary; mark("budget", "best", "resources", "history", "time", "table", "pareto"); }
      if (d.curves) { applyCurves(d.curves); mark("curves"); }
      if (d.events) { applyEvents(d.events); mark("events"); }
      if (d.importance) { S.importance = d.importance; mark("importance"); }
      if (d.cursor) S.cursor = d.cursor;
    }

    async function start() {
      // plotly.js (4.8 MB) compiles while the server builds the data; the table does not wait for it
      const plotlyLoading = plotly().catch((e) => banner(String(e)));
      const snap = STATIC ? JSON.parse($("#report-data").textContent) : await getJSON(`/api/study?name=${encodeURIComponent(name)}`);
      markT("data");
      if (snap.pending) {
        $("#study-body").hidden = true;
        $("#pending").hidden = false;
        $("#pending-log").textContent = snap.log || "";
        $("#study-state").textContent = "starting";
        stream(() => `/api/study/stream?name=${encodeURIComponent(name)}`, { delta: onDelta });
        return;
      }
      S.info = snap.study;
      snap.columns.forEach((c, i) => (S.C[c] = i));
      applyRows(snap.jobs);
      applyCurves(snap.curves);
      applyEvents(snap.events || []);
      S.summary = snap.summary;
      S.importance = snap.importance;
      S.cursor = snap.cursor;
      S.skew = (snap.now || Date.now() / 1000) - Date.now() / 1000;
      S.pcLimit = "auto";
      S.ptLimit = "auto";
      mark(...ORDER);
      bindTable();
      $("#pc-limit").addEventListener("change", (e) => { S.pcLimit = e.target.value; mark("parcoords"); });
      $("#pt-limit").addEventListener("change", (e) => { S.ptLimit = e.target.value; mark("history", "time", "slices"); });
      const cm = $("#curve-mode");
      if (STATIC) cm.disabled = true;
      cm.addEventListener("change", async (e) => {
        S.curveMode = e.target.value;
        if (S.curveMode === "all") {
          const r = await getJSON(`/api/study/curves?name=${encodeURIComponent(name)}&jobs=all`);
          applyCurves(r.curves);
        }
        mark("curves");
      });
      if (!STATIC) stream(() => `/api/study/stream?name=${encodeURIComponent(name)}&since=${S.cursor}`, { delta: onDelta });
      plotlyLoading.then(() => window.Plotly && schedule());
    }

    // -- panels
    const RENDER = {
      header() {
        const i = S.info;
        const st = $("#study-state");
        st.textContent = i.state + (i.end_reason ? ` (${i.end_reason})` : "");
        st.className = "badge " + i.state;
        st.dataset.state = i.state;
        const objs = i.objectives.map((o) => `${o.key} (${o.sign})`).join(", ");
        const who = i.owner && i.state === "running" ? ` · pid ${i.owner.pid} on ${i.owner.host}` : "";
        $("#study-meta").textContent = `${i.strategy} on ${i.backend} · ${objs} · created ${when(i.created)}${who}`;
        if (STATIC) return;
        const running = i.state === "running";
        $("#act-stop").disabled = !(running && i.owner && i.owner.here);
        $("#act-resume").disabled = running;
        $("#act-extend").disabled = running;
        $("#act-delete").classList.toggle("disabled", running);
        if (running) $("#act-delete").setAttribute("aria-disabled", "true"); else $("#act-delete").removeAttribute("aria-disabled");
      },
      budget() {
        const b = S.summary.budget || {};
        const box = $("#budget");
        box.textContent = "";
        const now = Date.now() / 1000 + S.skew;
        const lastEnd = Math.max(0, ...[...S.jobs.values()].map((r) => col(r, "t1") || 0));
        const t0 = b.time && b.time[0];
        const elapsed = t0 ? ((S.info.state === "running" ? now : lastEnd || now) - t0) / 60 : null;
        const rows = [["jobs", b.jobs && b.jobs[0], b.jobs && b.jobs[1], ""],
                      ["iterations", b.iterations && b.iterations[0], b.iterations && b.iterations[1], ""],
                      ["time", elapsed, b.time && b.time[1], " min"],
                      ["compute", b.compute && b.compute[0], b.compute && b.compute[1], " min"]];
        for (const [label, used, limit, unit] of rows) {
          const pct = limit ? Math.min(100, (100 * (used || 0)) / limit) : null;
          const txt = `${fmt(used === null || used === undefined ? null : +(+used).toFixed(2))}${unit}` +
            (limit ? ` of ${fmt(limit)}${unit} (${pct.toFixed(0)}%)` : " (no limit)");
          box.append(h("div", { cls: "budget-row", "data-budget": label }, h("span", { cls: "muted", text: label }),
            h("span", {}, pct === null ? "" : h("span", { cls: "progress" }, h("span", { style: `width:${pct}%` })), " ", txt)));
        }
      },
      resources() {
        const box = $("#resources");
        box.textContent = "";
        const t = h("table", { cls: "grid small" }, h("tr", {}, h("th", { text: "backend" }), h("th", { text: "queue" }),
          h("th", { text: "queued" }), h("th", { text: "running" }), h("th", { text: "concurrency" })));
        for (const r of S.summary.resources || []) {
          t.append(h("tr", {}, h("td", { text: r.backend }), h("td", { text: r.queue }), h("td", { text: r.queued, "data-res": "queued" }),
            h("td", { text: r.running, "data-res": "running" }), h("td", { text: fmt(S.info.limits.max_number_of_concurrent_tasks) })));
        }
        const c = S.summary.counts || {};
        box.append(t, h("p", { cls: "small muted" }, Object.entries(c).map(([k, v]) => `${k} ${v}`).join(" · ") || "no jobs yet"));
      },
      best() {
        const box = $("#best");
        box.textContent = "";
        const b = S.summary.best;
        if (!b) { box.append(h("p", { cls: "muted", text: "no completed job yet" })); return; }
        const link = STATIC ? h("strong", { text: `#${b.n}` }) : h("a", { href: `/job/${b.id}`, text: `#${b.n}` });
        const kv = h("table", { cls: "kv" });
        S.info.objectives.forEach((o, k) => kv.append(h("tr", {}, h("td", { text: o.key }), h("td", { text: fmt(b.v[k]), "data-best-value": k }))));
        if (b.b !== null && b.b !== undefined) kv.append(h("tr", {}, h("td", { text: "budget" }), h("td", { text: fmt(b.b) })));
        for (const [k, v] of Object.entries(b.p || {})) kv.append(h("tr", {}, h("td", { text: k }), h("td", { text: fmt(v) })));
        box.append(h("p", {}, "job ", link, ` (${b.id})`), kv);
      },
      table() { renderTable(); markT("table"); },
      events() {
        const tb = $("#events tbody");
        tb.textContent = "";
        const evs = [...S.events.values()].sort((a, b) => b.id - a.id).slice(0, 200);
        const byId = new Map([...S.jobs.values()].map((r) => [col(r, "id"), col(r, "n")]));
        for (const e of evs) {
          const n = e.job_id ? byId.get(e.job_id) : null;
          tb.append(h("tr", { "data-kind": e.kind }, h("td", { text: when(e.time) }), h("td", { text: e.kind }),
            h("td", {}, n !== null && n !== undefined ? (STATIC ? `#${n}` : h("a", { href: `/job/${e.job_id}`, text: `#${n}` })) : ""),
            h("td", { text: e.data ? fmt(e.data) : "" })));
        }
      },
      history() {
        const all = [...S.jobs.values()].filter(live);
        const rows = sample(all, POINTS());
        const traces = [];
        const big = rows.length > GL();
        for (const st of ["completed", "pruned", "running", "failed", "aborted"]) {
          const sel = rows.filter((r) => col(r, "st") === st);
          const x = [], y = [], text = [];
          for (const r of sel) {
            const v = st === "completed" && col(r, "v") ? col(r, "v")[0] : col(r, "lv");
            if (v === null || v === undefined) continue;
            x.push(col(r, "n")); y.push(v); text.push(hover(r));
          }
          const missing = sel.length - x.length;
          if (!x.length && !missing) continue;
          const total = rows === all ? sel.length : all.filter((r) => col(r, "st") === st).length;
          traces.push({ type: big ? "scattergl" : "scatter", mode: "markers", x, y, text, hoverinfo: "text",
                        name: st + (st === "completed" ? "" : " (last value)") + (missing ? ` · ${missing} without value` : "") +
                          (total > sel.length ? ` · ${sel.length} of ${total} drawn` : ""),
                        marker: { color: COLORS[st], size: 6, symbol: st === "completed" ? "circle" : st === "pruned" ? "triangle-down-open" : "x" } });
        }
        const steps = S.summary.steps_n || [];
        if (steps.length) {
          const lastN = Math.max(...all.map((r) => col(r, "n")));
          traces.push({ type: "scatter", mode: "lines", line: { shape: "hv", color: "#111", width: 2 }, name: "best so far",
                        x: [...steps.map((s) => s[0]), lastN], y: [...steps.map((s) => s[1]), steps[steps.length - 1][1]], hoverinfo: "y" });
        }
        const b = S.summary.best;
        if (b) {
          const r = S.jobs.get(b.n);
          traces.push({ type: "scatter", mode: "markers", x: [b.n], y: [b.v[0]], name: `best #${b.n}`, text: [r ? hover(r) : ""],
                        hoverinfo: "text", marker: { symbol: "star", size: 16, color: "#facc15", line: { color: "#111", width: 1 } } });
        }
        return react("p-history", traces, { xaxis: { title: { text: "job #" } }, yaxis: { title: { text: primary().key } } });
      },
      time() {
        const every = [...S.jobs.values()].filter((r) => live(r) && col(r, "st") === "completed" && col(r, "v") && col(r, "t1"))
          .sort((a, b) => col(a, "t1") - col(b, "t1"));
        const done = sample(every, POINTS());
        const traces = [{ type: done.length > GL() ? "scattergl" : "scatter", mode: "lines+markers",
          name: "last reported" + (done.length < every.length ? ` (${done.length} of ${every.length} drawn)` : ""),
          x: done.map((r) => new Date(col(r, "t1") * 1000)), y: done.map((r) => col(r, "v")[0]),
          text: done.map(hover), hoverinfo: "text", marker: { size: 4, color: COLORS.completed }, line: { width: 1, color: "#9ecae1" } }];
        const steps = S.summary.steps_t || [];
        if (steps.length) {
          const end = S.info.state === "running" ? Date.now() / 1000 + S.skew : Math.max(...every.map((r) => col(r, "t1")));
          traces.push({ type: "scatter", mode: "lines", line: { shape: "hv", color: "#111", width: 2 }, name: maximize() ? "max so far" : "min so far",
            x: [...steps.map((s) => new Date(s[2] * 1000)), new Date(end * 1000)], y: [...steps.map((s) => s[1]), steps[steps.length - 1][1]] });
        }
        return react("p-time", traces, { xaxis: { type: "date" }, yaxis: { title: { text: primary().key } } });
      },
      parcoords: renderParcoords,
      curves: renderCurves,
      importance() {
        const imp = S.importance;
        const note = $("#importance-note");
        if (!imp || !imp.values) {
          note.textContent = imp ? imp.message : "computing…";
          return react("p-importance", [], { xaxis: { visible: false }, yaxis: { visible: false } });
        }
        const items = Object.entries(imp.values).sort((a, b) => a[1] - b[1]);
        note.textContent = `${imp.method}, ${imp.n} completed jobs`;
        return react("p-importance", [{ type: "bar", orientation: "h", x: items.map((i) => i[1]), y: items.map((i) => i[0]),
          marker: { color: "#2563eb" }, hovertemplate: "%{y}: %{x:.3f}<extra></extra>" }],
          { margin: { l: 120, r: 20, t: 10, b: 40 }, xaxis: { title: { text: "share of importance" } } });
      },
      pareto() {
        const objs = S.info.objectives;
        $("#pareto-panel").hidden = objs.length < 2;
        if (objs.length < 2) return;
        const front = new Set(S.summary.pareto || []);
        const done = [...S.jobs.values()].filter((r) => live(r) && col(r, "st") === "completed" && col(r, "v"));
        const other = done.filter((r) => !front.has(col(r, "n")));
        const best = done.filter((r) => front.has(col(r, "n"))).sort((a, b) => col(a, "v")[0] - col(b, "v")[0]);
        const tr = (sel, nm, color, mode) => ({ type: "scatter", mode, name: nm, x: sel.map((r) => col(r, "v")[0]), y: sel.map((r) => col(r, "v")[1]),
          text: sel.map(hover), hoverinfo: "text", marker: { color, size: 7 }, line: { color, shape: "hv" } });
        return react("p-pareto", [tr(other, "dominated", "#9ca3af", "markers"), tr(best, "Pareto front", "#dc2626", "lines+markers")],
          { xaxis: { title: { text: `${objs[0].key} (${objs[0].sign})` } }, yaxis: { title: { text: `${objs[1].key} (${objs[1].sign})` } } });
      },
      slices: renderSlices,
      restimeline() {
        const ev = [];
        const now = Date.now() / 1000 + S.skew;
        for (const r of S.jobs.values()) {
          const q = col(r, "tq"), s0 = col(r, "t0"), e = col(r, "t1");
          const endQ = s0 || e || (col(r, "st") === "pending" ? now : null);
          if (q && endQ && endQ > q) { ev.push([q, 1, 0]); ev.push([endQ, -1, 0]); }
          if (s0) { ev.push([s0, 0, 1]); ev.push([e || now, 0, -1]); }
        }
        ev.sort((a, b) => a[0] - b[0]);
        const x = [], yq = [], yr = [];
        let q = 0, run = 0;
        for (const [t, dq, dr] of ev) { q += dq; run += dr; x.push(new Date(t * 1000)); yq.push(q); yr.push(run); }
        return react("p-resources", [
          { type: "scatter", mode: "lines", line: { shape: "hv", color: COLORS.pending }, name: "queued", x, y: yq },
          { type: "scatter", mode: "lines", line: { shape: "hv", color: COLORS.running }, name: "running", x, y: yr }],
          { xaxis: { type: "date" }, yaxis: { title: { text: "jobs" }, rangemode: "tozero" } });
      },
    };

    // Above POINTS() points a scatter plot draws a sample: the best 200 by the primary objective, the
    // latest 100 jobs, and the others picked by their job number (a golden-ratio sequence, so the pick is
    // spread evenly and a job stays in or out as the study grows). "all points" draws every job (WebGL).
    function sample(rows, budget) {
      if (S.ptLimit === "all" || rows.length <= budget) return rows;
      const sgn = maximize() ? -1 : 1, val = (r) => (col(r, "v") ? col(r, "v")[0] : null);
      const best = new Set(rows.filter((r) => typeof val(r) === "number").sort((a, b) => sgn * (val(a) - val(b))).slice(0, 200));
      const ns = rows.map((r) => col(r, "n")).sort((a, b) => b - a);
      const latest = ns[Math.min(99, ns.length - 1)];
      const rate = Math.max(0, budget - best.size - 100) / rows.length;
      return rows.filter((r) => best.has(r) || col(r, "n") >= latest || ((col(r, "n") * 2654435761) >>> 0) / 4294967296 < rate);
    }
    const hoverCache = new WeakMap();  // rows are replaced when they change, so a row's text never goes stale
    function hover(r) {
      let t = hoverCache.get(r);
      if (t === undefined) { t = hoverText(r); hoverCache.set(r, t); }
      return t;
    }
    function hoverText(r) {
      const names = S.info.params.map((p) => p.name);
      const vals = col(r, "v");
      let t = `#${col(r, "n")} ${col(r, "st")}`;
      if (vals) S.info.objectives.forEach((o, k) => (t += `<br>${o.key}: ${fmt(vals[k])}`));
      else if (col(r, "lv") !== null && col(r, "lv") !== undefined) t += `<br>last ${primary().key}: ${fmt(col(r, "lv"))} @ ${col(r, "li")}`;
      if (col(r, "b") !== null && col(r, "b") !== undefined) t += `<br>budget: ${fmt(col(r, "b"))}`;
      const p = col(r, "p");
      names.forEach((n, k) => (t += `<br>${n}: ${fmt(p[k])}`));
      return t;
    }

    // -- parallel coordinates: few traces (colour bins, statuses, best) with None gaps, axes drawn as shapes
    function axisOf(values, scale) {
      const present = values.filter((v) => v !== null && v !== undefined);
      if (scale === "cat" || present.some((v) => typeof v !== "number")) {
        const cats = [...new Set(present.map(String))].sort();
        const k = Math.max(1, cats.length - 1);
        return { map: (v) => (v === null || v === undefined ? null : cats.indexOf(String(v)) / k),
                 ticks: cats.slice(0, 12).map((c, i) => [i / k, c]) };
      }
      const log = scale === "log" && present.every((v) => v > 0);
      const f = (v) => (log ? Math.log10(v) : v);
      let lo = Math.min(...present.map(f)), hi = Math.max(...present.map(f));
      if (!isFinite(lo)) { lo = 0; hi = 1; }
      if (hi === lo) { hi = lo + 1; }
      const ticks = [];
      for (let i = 0; i <= 4; i++) { const u = lo + ((hi - lo) * i) / 4; ticks.push([i / 4, fmt(log ? 10 ** u : u)]); }
      return { map: (v) => (v === null || v === undefined || typeof v !== "number" ? null : (f(v) - lo) / (hi - lo)), ticks, lo, hi, log };
    }
    function renderParcoords() {
      const all = [...S.jobs.values()].filter(live);
      const sgn = maximize() ? -1 : 1;
      const done = all.filter((r) => col(r, "st") === "completed" && col(r, "v"));
      let limit = S.pcLimit === "all" ? Infinity : S.pcLimit === "auto" ? (all.length > 1500 ? 1000 : Infinity) : +S.pcLimit;
      let shown = done;
      let others = all.filter((r) => col(r, "st") !== "completed");
      if (done.length > limit) {
        shown = [...done].sort((a, b) => sgn * (col(a, "v")[0] - col(b, "v")[0])).slice(0, limit);
        others = others.sort((a, b) => col(b, "n") - col(a, "n")).slice(0, 200);
      }
      const axes = S.info.params.map((p, k) => ({ name: p.name, get: (r) => col(r, "p")[k], scale: p.scale }));
      if (all.some((r) => col(r, "b") !== null && col(r, "b") !== undefined)) axes.push({ name: "budget", get: (r) => col(r, "b"), scale: "float" });
      axes.push({ name: primary().key, get: (r) => (col(r, "v") ? col(r, "v")[0] : col(r, "lv")), scale: "float", objective: true });
      const rowsForScale = [...shown, ...others];
      const scales = axes.map((a) => axisOf(rowsForScale.map(a.get), a.scale));
      const NOVAL = -0.08;
      const line = (sel) => {
        const x = [], y = [], text = [];
        for (const r of sel) {
          const ht = hover(r);
          axes.forEach((a, i) => { const v = scales[i].map(a.get(r)); x.push(i); y.push(v === null ? NOVAL : v); text.push(ht); });
          x.push(null); y.push(null); text.push(null);
        }
        return { x, y, text };
      };
      const traces = [];
      const obj = scales[scales.length - 1];
      const bins = VIRIDIS.length;
      const binned = Array.from({ length: bins }, () => []);
      for (const r of shown) {
        let u = obj.map(col(r, "v")[0]);
        if (u === null) u = 0;
        if (!maximize()) u = 1 - u;  // better is always the bright end
        binned[Math.min(bins - 1, Math.floor(u * bins))].push(r);
      }
      binned.forEach((sel, i) => { if (sel.length) traces.push({ type: "scatter", mode: "lines", ...line(sel), hoverinfo: "text",
        line: { color: VIRIDIS[i], width: 1 }, opacity: 0.6, showlegend: false, name: `bin ${i}` }); });
      for (const st of ["pruned", "failed", "aborted", "running"]) {
        const sel = others.filter((r) => col(r, "st") === st);
        if (sel.length) traces.push({ type: "scatter", mode: "lines", ...line(sel), hoverinfo: "text", name: `${st} (${sel.length})`,
          line: { color: COLORS[st], width: 1.2, dash: st === "pruned" ? "dash" : "dot" }, opacity: 0.8 });
      }
      const b = S.summary.best && S.jobs.get(S.summary.best.n);
      if (b) traces.push({ type: "scatter", mode: "lines+markers", ...line([b]), hoverinfo: "text", name: `best #${col(b, "n")}`,
        line: { color: "#dc2626", width: 3.5 }, marker: { size: 7 } });
      // colour bar: an invisible trace carrying the objective's scale
      if (obj.lo !== undefined && done.length) {
        traces.push({ type: "scatter", mode: "markers", x: [null], y: [null], showlegend: false, hoverinfo: "skip",
          marker: { color: [obj.lo, obj.hi], cmin: obj.lo, cmax: obj.hi, colorscale: "Viridis", reversescale: !maximize(), showscale: true,
                    size: 0.1, colorbar: { title: { text: primary().key, side: "right" }, thickness: 12, len: 0.9 } } });
      }
      const shapes = axes.map((a, i) => ({ type: "line", x0: i, x1: i, y0: 0, y1: 1, line: { color: "#555", width: 1 } }));
      const annotations = [];
      axes.forEach((a, i) => {
        annotations.push({ x: i, y: 1.06, text: `<b>${a.name}</b>${scales[i].log ? " (log)" : ""}`, showarrow: false, xanchor: "center" });
        for (const [pos, label] of scales[i].ticks) annotations.push({ x: i, y: pos, text: label, showarrow: false, xanchor: "right", xshift: -4, font: { size: 10, color: "#444" } });
        if (all.some((r) => a.get(r) === null || a.get(r) === undefined)) annotations.push({ x: i, y: NOVAL, text: "no value", showarrow: false, xanchor: "right", xshift: -4, font: { size: 9, color: "#b91c1c" } });
      });
      const note = shown.length < done.length ? ` (best ${shown.length} of ${done.length} completed by ${primary().key}, latest 200 others)` : "";
      annotations.push({ x: 0, y: -0.16, xanchor: "left", text: `${shown.length + others.length} jobs${note}`, showarrow: false, font: { size: 10, color: "#666" } });
      return react("p-parcoords", traces, { shapes, annotations, margin: { l: 70, r: 30, t: 40, b: 50 },
        xaxis: { range: [-0.35, axes.length - 0.7], visible: false }, yaxis: { range: [-0.12, 1.1], visible: false }, legend: { orientation: "h", y: -0.06 } });
    }

    function curveSet() {
      const nums = [...S.curves.keys()];
      if (S.curveMode === "all") return nums;
      const top = new Set((S.summary.top || []).slice(0, 10));
      const latest = [...S.jobs.keys()].sort((a, b) => b - a).slice(0, 90);
      const keep = new Set([...top, ...latest]);
      return nums.filter((n) => keep.has(n));
    }
    function renderCurves() {
      const groups = {};
      const best = S.summary.best ? S.summary.best.n : null;
      for (const n of curveSet()) {
        const r = S.jobs.get(n);
        if (!r || !live(r)) continue;
        const st = n === best ? "best" : col(r, "st");
        const g = (groups[st] = groups[st] || { x: [], y: [], text: [], n: 0 });
        const pts = [...S.curves.get(n).entries()].sort((a, b) => a[0] - b[0]);
        const b = col(r, "b");
        for (const [it, v] of pts) { g.x.push(it); g.y.push(v); g.text.push(`#${n} ${col(r, "st")}<br>iteration ${it}: ${fmt(v)}` + (b !== null && b !== undefined ? `<br>budget ${fmt(b)}` : "")); }
        g.x.push(null); g.y.push(null); g.text.push(null); g.n += 1;
      }
      const style = { completed: { color: COLORS.completed, width: 1 }, pruned: { color: COLORS.pruned, width: 1, dash: "dash" },
                      running: { color: COLORS.running, width: 1.5 }, failed: { color: COLORS.failed, width: 1, dash: "dot" },
                      aborted: { color: COLORS.aborted, width: 1, dash: "dot" }, pending: { color: COLORS.pending, width: 1 },
                      best: { color: "#dc2626", width: 3 } };
      const traces = Object.entries(groups).map(([st, g]) => ({ type: "scatter", mode: "lines", x: g.x, y: g.y, text: g.text, hoverinfo: "text",
        name: st === "best" ? `best #${best}` : `${st} (${g.n})`, line: style[st] || {}, opacity: st === "completed" ? 0.6 : 0.9 }));
      return react("p-curves", traces, { xaxis: { title: { text: "iteration" } }, yaxis: { title: { text: primary().key } } });
    }

    function renderSlices() {
      const params = S.info.params;
      const every = [...S.jobs.values()].filter((r) => live(r) && col(r, "st") === "completed" && col(r, "v"));
      const done = sample(every, Math.round((1.5 * POINTS()) / Math.max(1, params.length)));
      const cols = Math.min(3, Math.max(1, params.length)), rows = Math.ceil(params.length / cols);
      const traces = [], layout = { grid: { rows, columns: cols, pattern: "independent" }, showlegend: false,
                                    margin: { l: 60, r: 20, t: 20, b: 40 } };
      const budgets = done.map((r) => col(r, "b")).filter((b) => b !== null && b !== undefined);
      const bmax = budgets.length ? Math.max(...budgets) : null;
      const gl = done.length > GL();
      params.forEach((p, k) => {
        const ax = k === 0 ? "" : String(k + 1);
        traces.push({ type: gl ? "scattergl" : "scatter", mode: "markers", xaxis: "x" + ax, yaxis: "y" + ax,
          x: done.map((r) => col(r, "p")[k]), y: done.map((r) => col(r, "v")[0]), text: done.map(hover), hoverinfo: "text",
          marker: { size: bmax ? done.map((r) => 4 + 6 * ((col(r, "b") || 0) / bmax)) : 5, color: done.map((r) => col(r, "n")),
                    colorscale: "Blues", opacity: 0.75, showscale: k === 0, colorbar: { title: { text: "job #" }, thickness: 10 } } });
        if (k === 0 && done.length < every.length) {
          layout.annotations = [{ xref: "paper", yref: "paper", x: 1, y: 1.02, xanchor: "right", yanchor: "bottom", showarrow: false,
            text: `${done.length} of ${every.length} completed jobs drawn`, font: { size: 10, color: "#666" } }];
        }
        const b = S.summary.best && S.jobs.get(S.summary.best.n);
        if (b) traces.push({ type: "scatter", mode: "markers", xaxis: "x" + ax, yaxis: "y" + ax, x: [col(b, "p")[k]], y: [col(b, "v")[0]],
          hoverinfo: "skip", marker: { symbol: "star", size: 14, color: "#facc15", line: { color: "#111", width: 1 } } });
        layout["xaxis" + ax] = { title: { text: p.name, standoff: 2 }, type: p.scale === "log" ? "log" : p.scale === "cat" ? "category" : "linear" };
        layout["yaxis" + ax] = { title: { text: k % cols === 0 ? primary().key : "" } };
      });
      $("#p-slices").style.height = `${Math.max(300, 260 * rows)}px`;
      return react("p-slices", traces, layout);
    }

    // -- jobs table: sorted and filtered in memory, drawn a page at a time
    const PAGE = 50;
    function tableColumns() {
      const cs = [{ key: "n", label: "#", get: (r) => col(r, "n") }, { key: "rank", label: "rank", get: (r) => rankOf(r) },
                  { key: "st", label: "status", get: (r) => col(r, "st") }];
      S.info.objectives.forEach((o, k) => cs.push({ key: "v" + k, label: o.key, get: (r) => (col(r, "v") ? col(r, "v")[k] : null) }));
      cs.push({ key: "li", label: "iterations", get: (r) => (col(r, "it") ? col(r, "it")[0] : col(r, "li")) });
      cs.push({ key: "b", label: "budget", get: (r) => col(r, "b") });
      cs.push({ key: "dur", label: "duration", get: (r) => duration(r), show: dur });
      S.info.params.forEach((p, k) => cs.push({ key: "p" + k, label: p.name, get: (r) => col(r, "p")[k] }));
      cs.push({ key: "r", label: "reason", get: (r) => col(r, "r") });
      return cs;
    }
    function rankOf(r) { const i = (S.summary.top || []).indexOf(col(r, "n")); return i < 0 ? null : i + 1; }
    function duration(r) {
      const s = col(r, "t0");
      if (!s) return null;
      return (col(r, "t1") || Date.now() / 1000 + S.skew) - s;
    }
    function bindTable() {
      // the user's own actions redraw the table at once, not behind queued plots
      const now = () => { S.dirty.delete("table"); renderTable(); };
      $("#job-filter").addEventListener("input", () => { S.page = 0; now(); });
      $("#job-status").addEventListener("change", () => { S.page = 0; now(); });
      $("#show-superseded").addEventListener("change", () => { S.page = 0; now(); });
      $("#page-prev").addEventListener("click", () => { S.page = Math.max(0, S.page - 1); now(); });
      $("#page-next").addEventListener("click", () => { S.page += 1; now(); });
      $("#jobs thead").addEventListener("click", (e) => {
        const k = e.target.closest("th") && e.target.closest("th").dataset.key;
        if (!k) return;
        S.sort = { key: k, dir: S.sort.key === k ? -S.sort.dir : (k === "rank" ? 1 : -1) };
        now();
      });
    }
    function renderTable() {
      const cs = tableColumns();
      const head = $("#jobs thead");
      head.textContent = "";
      head.append(h("tr", {}, ...cs.map((c) => h("th", { "data-key": c.key, text: c.label + (S.sort.key === c.key ? (S.sort.dir > 0 ? " ▲" : " ▼") : "") }))));
      let rows = [...S.jobs.values()];
      if (!$("#show-superseded").checked) rows = rows.filter(live);
      const st = $("#job-status").value;
      if (st) rows = rows.filter((r) => col(r, "st") === st);
      const q = $("#job-filter").value.trim().toLowerCase();
      if (q) {
        const m = q.match(/^#(\d+)$/), ms = q.match(/^status:(\w+)$/);
        if (m) rows = rows.filter((r) => col(r, "n") === +m[1]);
        else if (ms) rows = rows.filter((r) => col(r, "st") === ms[1]);
        else rows = rows.filter((r) => cs.some((c) => String(fmt(c.get(r))).toLowerCase().includes(q)) || col(r, "id").includes(q));
      }
      const c = cs.find((x) => x.key === S.sort.key) || cs[0];
      const dir = S.sort.dir;
      const nul = (v) => v === null || v === undefined;
      rows.sort((a, b) => {
        const x = c.get(a), y = c.get(b);
        if (nul(x) && nul(y)) return col(b, "n") - col(a, "n");
        if (nul(x)) return 1;
        if (nul(y)) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      const pages = Math.max(1, Math.ceil(rows.length / PAGE));
      S.page = Math.min(S.page, pages - 1);
      $("#page-info").textContent = `page ${S.page + 1} of ${pages}`;
      $("#job-count").textContent = `${rows.length} of ${S.jobs.size} jobs`;
      const tb = $("#jobs tbody");
      const frag = document.createDocumentFragment();
      const best = S.summary.best ? S.summary.best.n : null;
      for (const r of rows.slice(S.page * PAGE, (S.page + 1) * PAGE)) {
        const tr = h("tr", { "data-n": col(r, "n"), "data-status": col(r, "st"), cls: col(r, "n") === best ? "best" : null });
        for (const cc of cs) {
          const v = cc.get(r);
          let cell = cc.show ? cc.show(v) : fmt(v);
          if (cc.key === "n" && !STATIC) cell = h("a", { href: `/job/${col(r, "id")}`, text: `#${v}` });
          else if (cc.key === "n") cell = `#${v}`;
          if (cc.key === "st" && col(r, "int")) cell += " (interrupted)";
          tr.append(h("td", { cls: cc.key === "st" ? "st-" + col(r, "st") : null, title: cc.key === "r" ? (v || "") : null }, cell));
        }
        frag.append(tr);
      }
      tb.replaceChildren(frag);
    }

    start().catch((e) => { banner(String(e)); HS.errors.push(String(e)); });
  }

  // -- studies list --------------------------------------------------------------------------
  function listPage() {
    const rows = new Map();
    function draw() {
      const q = $("#search").value.trim().toLowerCase();
      const all = $("#show-cleared").checked;
      const tb = $("#studies tbody");
      const frag = document.createDocumentFragment();
      const list = [...rows.values()].sort((a, b) => b.created - a.created);
      let shown = 0;
      for (const r of list) {
        if (r.cleared && !all) continue;
        const hay = `${r.name} ${r.strategy} ${r.backend} ${r.state}`.toLowerCase();
        if (q && !hay.includes(q)) continue;
        shown++;
        const done = r.completed + r.failed + r.pruned + r.aborted;
        const total = r.total_max_jobs;
        const pct = total ? Math.min(100, (100 * done) / total) : null;
        const best = r.best ? r.best.keys.map((k, i) => `${fmt(r.best.v[i])}`).join(", ") + ` (#${r.best.n})` : "–";
        frag.append(h("tr", { "data-study": r.name, "data-state": r.state },
          h("td", {}, h("a", { href: `/study/${encodeURIComponent(r.name)}`, text: r.name }), r.cleared ? h("span", { cls: "muted small", text: " cleared" }) : null),
          h("td", {}, h("span", { cls: `badge ${r.state}`, text: r.state + (r.end_reason && r.state !== "running" ? ` (${r.end_reason})` : "") })),
          h("td", {}, pct === null ? "" : h("span", { cls: "progress" }, h("span", { style: `width:${pct}%` })), ` ${done}${total ? " / " + total : ""}`),
          h("td", { title: r.best ? r.best.keys.join(", ") : "", "data-best": "" }, best),
          h("td", { text: r.strategy || "–" }), h("td", { text: r.backend || "–" }),
          h("td", { cls: "small", text: `${r.completed} done · ${r.active} active · ${r.failed} failed · ${r.pruned} pruned` }),
          h("td", { cls: "small", text: when(r.created) })));
      }
      tb.replaceChildren(frag);
      $("#list-status").textContent = `${shown} of ${rows.size} studies`;
      HS.flushes += 1;
    }
    getJSON("/api/studies").then((d) => {
      for (const r of d.rows) rows.set(r.name, r);
      draw();
      stream(() => "/api/studies/stream", { rows: (u) => { for (const r of u.rows) rows.set(r.name, r); for (const n of u.removed) rows.delete(n); draw(); } });
    }).catch((e) => banner(String(e)));
    $("#search").addEventListener("input", draw);
    $("#show-cleared").addEventListener("change", draw);
  }

  // -- job page ------------------------------------------------------------------------------
  function jobPage() {
    const id = $("#job").dataset.job;
    const J = { job: null, metrics: new Map(), events: new Map(), cursor: "" };
    HS.J = J;
    function addMetrics(ms) {
      for (const [t, s, it, v, tm, a] of ms) {
        const k = `${t}\u0000${s}`;
        let m = J.metrics.get(k);
        if (!m) J.metrics.set(k, (m = { title: t, series: s, pts: new Map() }));
        m.pts.set(it, [v, a]);
      }
    }
    function drawInfo() {
      const j = J.job;
      $("#job-title").textContent = `Job #${j.number} (${j.id})`;
      const st = $("#job-state");
      st.textContent = j.status + (j.interrupted ? " (interrupted)" : "");
      st.className = "badge st-" + j.status;
      st.dataset.status = j.status;
      const link = $("#job-study");
      link.textContent = `study ${j.study}`;
      link.href = `/study/${encodeURIComponent(j.study)}`;
      const kv = $("#job-params");
      kv.textContent = "";
      const row = (k, v) => kv.append(h("tr", {}, h("td", { text: k }), h("td", { text: fmt(v) })));
      (J.objectives || []).forEach((o, k) => row(`${o.title}/${o.series} (${o.sign})`, j.values ? j.values[k] : null));
      row("iteration of the value", j.iterations);
      row("budget", j.budget);
      for (const [k, v] of Object.entries(j.params)) row(k, v);
      row("duration", j.started ? dur((j.ended || Date.now() / 1000) - j.started) : null);
      row("exit code", j.exit_code);
      row("reason", j.reason);
      row("pid", j.pid);
      if (j.handle) row("handle", j.handle);
      if (j.retry_of) row("re-run of", j.retry_of);
      if (j.superseded_by) row("re-run as", j.superseded_by);
    }
    function drawEvents() {
      const j = J.job;
      const items = [[j.created, "created", ""], [j.queued, "queued", ""], [j.started, "started", j.pid ? `pid ${j.pid}` : ""]];
      if (j.ended) items.push([j.ended, j.status, j.reason || ""]);
      for (const e of J.events.values()) items.push([e.time, e.kind, e.data ? fmt(e.data) : ""]);
      const tb = $("#job-events tbody");
      tb.replaceChildren(...items.filter((i) => i[0]).sort((a, b) => a[0] - b[0])
        .map(([t, k, d]) => h("tr", { "data-kind": k }, h("td", { text: when(t) }), h("td", { text: k }), h("td", { text: d }))));
    }
    async function drawScalars() {
      await plotly();
      const box = $("#job-scalars");
      const titles = new Map();
      for (const m of J.metrics.values()) { if (!titles.has(m.title)) titles.set(m.title, []); titles.get(m.title).push(m); }
      if (!titles.size && !box.childElementCount) box.append(h("p", { cls: "muted", id: "no-scalars", text: "no scalar reported yet" }));
      let i = 0;
      for (const [title, series] of titles) {
        const divId = `scalar-${i++}`;
        let div = document.getElementById(divId);
        if (!div) { $("#no-scalars") && $("#no-scalars").remove(); box.append(h("h3", { cls: "small", text: title }), (div = h("div", { id: divId, cls: "plot" }))); }
        const traces = [];
        for (const m of series) {
          const pts = [...m.pts.entries()].sort((a, b) => a[0] - b[0]);
          const before = pts.filter((p) => !p[1][1]), after = pts.filter((p) => p[1][1]);
          traces.push({ type: "scatter", mode: "lines+markers", name: m.series, x: before.map((p) => p[0]), y: before.map((p) => p[1][0]), marker: { size: 4 } });
          if (after.length) traces.push({ type: "scatter", mode: "markers", name: `${m.series} (after stop)`, x: after.map((p) => p[0]), y: after.map((p) => p[1][0]), marker: { size: 4, symbol: "circle-open" } });
        }
        await react(divId, traces, { xaxis: { title: { text: "iteration" } } });
      }
      HS.flushes += 1;
    }
    function appendLog(which, text) {
      const pre = $(`#log-${which}`);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += text;
      if (pre.textContent.length > 400000) pre.textContent = pre.textContent.slice(-300000);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    getJSON(`/api/job/${encodeURIComponent(id)}`).then((d) => {
      J.job = d.job;
      J.objectives = d.objectives;
      addMetrics(d.metrics);
      for (const e of d.events) J.events.set(e.id, e);
      J.cursor = d.cursor;
      drawInfo(); drawEvents();
      for (const which of ["stdout", "stderr"]) {
        const l = d.logs[which];
        $(`#log-${which}`).textContent = (l.cut ? "…\n" : "") + l.text;
        if (!l.available) { $(`#${which}-full`).hidden = true; $(`#log-${which}`).textContent = l.outside ? "(this log lies outside the store and is not served)" : "(no log)"; }
      }
      drawScalars();
      stream(() => `/api/job/${encodeURIComponent(id)}/stream?since=${encodeURIComponent(J.cursor)}`, { delta: (u) => {
        HS.deltas += 1;
        if (u.job) { Object.assign(J.job, u.job); drawInfo(); drawEvents(); }
        if (u.events) { for (const e of u.events) J.events.set(e.id, e); drawEvents(); }
        if (u.metrics) { addMetrics(u.metrics); drawScalars(); }
        if (u.logs) for (const [w, t] of Object.entries(u.logs)) appendLog(w, t);
      } });
    }).catch((e) => banner(String(e)));
  }

  // -- launch form: show only the fields that apply (without script every field is shown) ---
  function launchPage() {
    const form = $("#launch-form");
    const sync = () => {
      const kind = (form.querySelector('input[name="task.kind"]:checked') || {}).value || "script";
      form.querySelectorAll("[data-kind]").forEach((e) => (e.hidden = !e.dataset.kind.split(" ").includes(kind)));
      const strat = form.querySelector('[name="strategy.name"]').value;
      form.querySelectorAll("[data-strategy]").forEach((e) => (e.hidden = e.dataset.strategy !== strat));
      form.querySelectorAll(".param").forEach((row) => {
        const t = row.querySelector(".ptype").value;
        row.querySelectorAll("[data-ptype]").forEach((e) => (e.hidden = !e.dataset.ptype.split(" ").includes(t)));
      });
    };
    form.addEventListener("change", sync);
    sync();
    const firstBad = document.querySelector(".field.bad input, .field.bad select, .field.bad textarea");
    if (firstBad) { const d = firstBad.closest("details"); if (d) d.open = true; firstBad.focus(); }
  }

  const pages = { study: studyPage, list: listPage, job: jobPage, launch: launchPage };
  notice();
  if (pages[body.dataset.page]) pages[body.dataset.page]();
  window.addEventListener("error", (e) => HS.errors.push(String(e.message)));
})();
