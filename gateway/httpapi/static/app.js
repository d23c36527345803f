/*
 * edgegw plant-floor page.
 *
 * One EventSource on "events" (the page's query string forwarded: the
 * gateway filters by line and machine) delivers the whole state about once
 * a second. The page keeps one element per machine, alert and sensor and
 * updates it in place, so that a click on a button or a running animation
 * survives the next event. A timer aligned on the gateway's seconds
 * advances the running timers and ages between events.
 *
 * Time: every timer counts on the gateway's clock, never the browser's:
 * at each event the gateway's "now" is tied to performance.now() (which
 * does not jump when someone sets the panel PC's clock).
 *
 * Plain ES2017, no framework, nothing fetched from outside the gateway;
 * data only ever goes into the page through textContent.
 */
"use strict";
(function () {
  var params = new URLSearchParams(location.search);
  var KIOSK = params.get("kiosk") === "1" || params.get("kiosk") === "true";

  var STALL_MS = 10000;   // no event for this long: close and reopen
  var REOPEN_MS = 3000;   // after the EventSource gave up (CLOSED)
  var NOTICE_MS = 8000;
  var TOKEN_KEY = "edgegw.ackToken";
  var SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };

  var $ = function (id) { return document.getElementById(id); };
  var body = document.body;
  body.dataset.kiosk = KIOSK ? "1" : "0";
  // The root element carries it too: kiosk type scales the rem.
  document.documentElement.classList.toggle("kiosk", KIOSK);

  // ---------------------------------------------------------------- clock

  var offset = null;      // gateway ms minus performance.now()
  var anchorServer = 0;   // the gateway's "now" of the shown state, ms

  function serverNow() { return performance.now() + offset; }

  // Seconds the gateway's clock has run since the shown state was taken.
  function sinceState() { return Math.max(0, (serverNow() - anchorServer) / 1000); }

  // The gateway's clock is tied to the monotonic clock at each event. A
  // small step back (an event that travelled longer than the one before)
  // is absorbed 50 ms per event so that no timer ever counts backwards; a
  // large step (the gateway's clock was set) is taken at once.
  function anchor(serverMs, perf) {
    var next = serverMs - perf;
    if (offset === null || next > offset || offset - next > 2000) offset = next;
    else offset = Math.max(next, offset - 50);
    anchorServer = serverMs;
  }

  // parseTS reads an RFC 3339 time; null for null, garbage or Go's zero
  // time. Fractions beyond milliseconds are cut (Go writes nanoseconds).
  function parseTS(s) {
    if (typeof s !== "string" || s === "") return null;
    var t = Date.parse(s.replace(/(\.\d{3})\d+/, "$1"));
    if (!isFinite(t) || t < -2208988800000) return null;
    return t;
  }

  // ------------------------------------------------------------ formatting

  function pad2(n) { return n < 10 ? "0" + n : String(n); }

  // mm:ss, then h:mm:ss: a running stop.
  function fmtTimer(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h > 0 ? h + ":" + pad2(m) + ":" + pad2(sec) : pad2(m) + ":" + pad2(sec);
  }

  // h:mm:ss always: a day's total.
  function fmtHMS(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    return Math.floor(s / 3600) + ":" + pad2(Math.floor((s % 3600) / 60)) + ":" + pad2(s % 60);
  }

  function fmtAge(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + pad2(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + pad2(Math.floor((s % 3600) / 60)) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  // A sensor's age: to the second while fresh, coarser once it is old.
  function fmtAgeShort(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h " + pad2(Math.floor((s % 3600) / 60)) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  // About four significant digits, never more than four decimals; whole
  // numbers (counters, 0/1 signals) as they are.
  function fmtValue(v) {
    if (typeof v !== "number" || !isFinite(v)) return "–";
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v), d;
    if (a >= 1000) d = 0;
    else if (a >= 10) d = 1;
    else if (a >= 1) d = 2;
    else if (a === 0) d = 0;
    else d = Math.min(4, 2 - Math.floor(Math.log10(a)));
    var out = v.toFixed(d);
    return /^-0(\.0*)?$/.test(out) ? out.slice(1) : out;
  }

  function fmtBytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  function fmtPercent(x) {
    if (typeof x !== "number" || !isFinite(x)) return "–";
    return (Math.min(1, Math.max(0, x)) * 100).toFixed(1) + " %";
  }

  function fmtCode(v) {
    return typeof v === "number" ? fmtValue(v) : String(v);
  }

  // ------------------------------------------------------------------ DOM

  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function setText(e, t) { if (e.textContent !== t) e.textContent = t; }
  function setData(e, k, v) { if (e.dataset[k] !== v) e.dataset[k] = v; }
  function show(e, on) { if (e.hidden === !!on) e.hidden = !on; }
  function toggle(e, cls, on) { if (e.classList.contains(cls) !== !!on) e.classList.toggle(cls, !!on); }

  // reconcile makes container's children one element per item, in items'
  // order, reusing the element of an item with the same key.
  function reconcile(container, items, keyOf, create, update) {
    var old = new Map();
    for (var i = 0; i < container.children.length; i++) {
      var c = container.children[i];
      old.set(c._key, c);
    }
    var prev = null;
    items.forEach(function (item) {
      var k = keyOf(item);
      var el = old.get(k);
      if (el) old.delete(k);
      else { el = create(item); el._key = k; }
      el._d = item;
      update(el, item);
      var want = prev ? prev.nextSibling : container.firstChild;
      if (el !== want) container.insertBefore(el, want);
      prev = el;
    });
    old.forEach(function (el) { el.remove(); });
  }

  function list(x) { return Array.isArray(x) ? x : []; }

  // ------------------------------------------------------------ machines

  function normState(s) { return s === "up" || s === "down" ? s : "unknown"; }

  function createMachine() {
    var el = h("article", "machine");
    var head = h("div", "m-head");
    var p = {
      name: h("div", "m-name"),
      line: h("div", "m-line"),
      state: h("div", "m-state"),
      timer: h("div", "m-timer"),
      sub: h("div", "m-sub"),
      reason: h("div", "m-reason"),
    };
    var who = h("div", "m-who");
    who.appendChild(p.name);
    who.appendChild(p.line);
    head.appendChild(who);
    head.appendChild(p.reason);
    var row = h("div", "m-row");
    row.appendChild(p.state);
    row.appendChild(p.timer);
    var stats = h("dl", "m-stats");
    function stat(label, cls) {
      var box = h("div", "m-stat " + cls);
      box.appendChild(h("dt", null, label));
      var dd = h("dd");
      box.appendChild(dd);
      stats.appendChild(box);
      return dd;
    }
    p.downtime = stat("Downtime", "s-downtime");
    p.avail = stat("Availability", "s-avail");
    p.stops = stat("Stops", "s-stops");
    el.appendChild(head);
    el.appendChild(row);
    el.appendChild(p.sub);
    el.appendChild(h("div", "m-today", "Today"));
    el.appendChild(stats);
    el._p = p;
    return el;
  }

  function updateMachine(el, m) {
    var p = el._p, st = normState(m.state);
    setData(el, "machine", String(m.name));
    setData(el, "state", st);
    setText(p.name, String(m.name));
    var filterLine = state && state.filter && state.filter.line;
    setText(p.line, m.line && m.line !== gatewayLine() && !filterLine ? m.line : "");
    setText(p.state, st.toUpperCase());
    setText(p.avail, fmtPercent(m.availability));
    setText(p.stops, typeof m.stops_today === "number" ? String(m.stops_today) : "–");
    var hasReason = m.reason !== null && m.reason !== undefined && m.reason !== "";
    show(p.reason, hasReason);
    if (hasReason) setText(p.reason, (st === "down" ? "Reason " : "Last stop reason ") + fmtCode(m.reason));
    tickMachine(el);
  }

  function tickMachine(el) {
    var m = el._d, p = el._p, st = normState(m.state);
    var down = st === "down";
    var start = parseTS(m.stop_start);
    if (start === null) start = parseTS(m.since);
    show(p.timer, down && start !== null);
    if (down && start !== null) setText(p.timer, fmtTimer((serverNow() - start) / 1000));
    var dt = m.downtime_today_s;
    if (typeof dt === "number" && down) dt += sinceState();
    setText(p.downtime, fmtHMS(dt));
    var since = parseTS(m.since);
    var sub = "";
    if (down) sub = start === null ? "stopped" : "";
    else if (since !== null) sub = (st === "up" ? "running for " : "no signal for ") + fmtAge((serverNow() - since) / 1000);
    else if (st === "unknown") sub = "no signal";
    setText(p.sub, sub);
  }

  function renderMachines(ms) {
    var box = $("machines");
    reconcile(box, ms, function (m) { return String(m.name); }, createMachine, updateMachine);
    show($("no-machines"), ms.length === 0);
    // More than fit beside the alerts: compact tiles across the whole width.
    toggle(box, "many", ms.length > 4);
    toggle($("board"), "many", ms.length > 4);
  }

  // -------------------------------------------------------------- alerts

  var ackInflight = new Set();   // rules whose POST is under way
  var ackDone = new Map();       // rule -> perf time of a 204 not yet seen in an event

  function sevRank(s) { return s in SEVERITY_RANK ? SEVERITY_RANK[s] : 3; }
  function sevClass(s) { return s in SEVERITY_RANK ? s : "info"; }

  function byUrgency(a, b) {
    var d = sevRank(a.severity) - sevRank(b.severity);
    if (d) return d;
    var ta = parseTS(a.since), tb = parseTS(b.since);
    if (ta === null) ta = Infinity;
    if (tb === null) tb = Infinity;
    if (ta !== tb) return ta < tb ? -1 : 1;
    return String(a.rule) < String(b.rule) ? -1 : String(a.rule) > String(b.rule) ? 1 : 0;
  }

  function alertMeta(a) {
    var bits = [String(a.rule)];
    if (a.machine) bits.push("machine " + a.machine);
    if (typeof a.value === "number") bits.push("value " + fmtValue(a.value));
    return bits.join(" · ");
  }

  function createFiring() {
    var el = h("div", "alert");
    var p = {
      sev: h("span", "a-sev"),
      msg: h("div", "a-msg"),
      meta: h("div", "a-meta"),
      age: h("span", "a-age"),
      ack: h("span", "a-ack", "ACK"),
      btn: null,
    };
    var act = h("div", "a-act");
    act.appendChild(p.ack);
    el.appendChild(p.sev);
    el.appendChild(p.msg);
    el.appendChild(p.age);
    el.appendChild(p.meta);
    el.appendChild(act);
    if (!KIOSK) {
      p.btn = h("button", "a-btn", "Acknowledge");
      p.btn.type = "button";
      p.btn.addEventListener("click", function () { requestAck(el._d); });
      act.appendChild(p.btn);
    }
    el._p = p;
    return el;
  }

  function updateFiring(el, a) {
    var p = el._p;
    var sev = sevClass(a.severity);
    setData(el, "rule", String(a.rule));
    setData(el, "severity", String(a.severity));
    setData(el, "acked", a.acked ? "true" : "false");
    toggle(el, "sev-critical", sev === "critical");
    toggle(el, "sev-warning", sev === "warning");
    toggle(el, "sev-info", sev === "info");
    setText(p.sev, String(a.severity || "alert").toUpperCase());
    setText(p.msg, a.message ? String(a.message) : String(a.rule));
    setText(p.meta, alertMeta(a));
    show(p.ack, !!a.acked);
    if (p.btn) {
      var can = !!(state && state.ack_enabled) && !a.acked;
      show(p.btn, can);
      var busy = ackInflight.has(a.rule), done = ackDone.has(a.rule);
      p.btn.disabled = busy || done;
      setText(p.btn, busy ? "Sending…" : done ? "Acknowledged" : "Acknowledge");
    }
    tickAlert(el);
  }

  function tickAlert(el) {
    var since = parseTS(el._d.since);
    setText(el._p.age, since === null ? "" : fmtAge((serverNow() - since) / 1000));
  }

  function createPending() {
    var el = h("div", "pending");
    var p = { sev: h("span", "p-sev"), msg: h("span", "p-msg"), meta: h("span", "p-meta"), age: h("span", "p-age") };
    el.appendChild(p.sev);
    el.appendChild(p.msg);
    el.appendChild(p.meta);
    el.appendChild(p.age);
    el._p = p;
    return el;
  }

  function updatePending(el, a) {
    var p = el._p;
    setData(el, "rule", String(a.rule));
    setData(el, "severity", String(a.severity));
    setText(p.sev, String(a.severity || "alert").toUpperCase());
    setText(p.msg, a.message ? String(a.message) : String(a.rule));
    setText(p.meta, alertMeta(a));
    tickAlert(el);
  }

  function renderAlerts(as) {
    var firing = as.filter(function (a) { return a.state === "firing"; }).sort(byUrgency);
    var pending = as.filter(function (a) { return a.state === "pending"; }).sort(byUrgency);
    // A 204 shows until the event that carries acked:true, at most 10 s.
    ackDone.forEach(function (t, rule) {
      var a = firing.find(function (x) { return x.rule === rule; });
      if (!a || a.acked || performance.now() - t > 10000) ackDone.delete(rule);
    });
    var key = function (a) { return String(a.rule); };
    reconcile($("alerts-firing"), firing, key, createFiring, updateFiring);
    reconcile($("alerts-pending"), pending, key, createPending, updatePending);
    show($("no-alerts"), firing.length === 0);
    show($("pending-box"), pending.length > 0);
  }

  function refreshAlertButtons() {
    var box = $("alerts-firing");
    for (var i = 0; i < box.children.length; i++) updateFiring(box.children[i], box.children[i]._d);
  }

  // ------------------------------------------------------------- sensors

  function createSensor() {
    var tr = h("tr");
    var p = {
      id: h("td", "s-id"),
      value: h("td", "s-value num"),
      unit: h("td", "s-unit"),
      age: h("td", "s-age num"),
      quality: h("td", "s-quality"),
      qtext: h("span", "q-text"),
      stale: h("span", "badge stale-badge", "stale"),
    };
    p.quality.appendChild(p.qtext);
    p.quality.appendChild(p.stale);
    ["id", "value", "unit", "age", "quality"].forEach(function (k) { tr.appendChild(p[k]); });
    tr._p = p;
    return tr;
  }

  function updateSensor(tr, s) {
    var p = tr._p, q = s.quality ? String(s.quality) : "";
    setData(tr, "sensor", String(s.id));
    setData(tr, "stale", s.stale ? "true" : "false");
    setData(tr, "quality", q || "none");
    toggle(tr, "is-stale", !!s.stale);
    toggle(tr, "q-bad", q === "bad");
    toggle(tr, "q-uncertain", q === "uncertain");
    setText(p.id, String(s.id));
    setText(p.value, fmtValue(s.value));
    setText(p.unit, s.unit ? String(s.unit) : "");
    setText(p.qtext, q === "bad" ? "BAD" : q === "uncertain" ? "uncertain" : q || "–");
    show(p.stale, !!s.stale);
    tickSensor(tr);
  }

  function tickSensor(tr) {
    var s = tr._d, age = null;
    if (typeof s.age_s === "number") age = s.age_s + sinceState();
    else {
      var ts = parseTS(s.ts);
      if (ts !== null) age = (serverNow() - ts) / 1000;
    }
    setText(tr._p.age, age === null ? "never" : fmtAgeShort(age));
  }

  function renderSensors(ss) {
    reconcile($("sensors"), ss, function (s) { return String(s.id); }, createSensor, updateSensor);
    show($("no-sensors"), ss.length === 0);
  }

  // -------------------------------------------------------------- health

  var healthParts = null;

  function healthItem(id) {
    var box = $(id);
    while (box.firstChild) box.removeChild(box.firstChild);
    var k = h("span", "h-k"), v = h("span", "h-v"), x = h("span", "h-x");
    box.appendChild(k);
    box.appendChild(v);
    box.appendChild(x);
    return { box: box, k: k, v: v, x: x };
  }

  function setLevel(item, level) {
    ["ok", "warn", "bad", "muted"].forEach(function (l) { toggle(item.box, l, l === level); });
  }

  function renderHealth(hh) {
    if (!healthParts) {
      healthParts = {
        uplink: healthItem("h-uplink"),
        spool: healthItem("h-spool"),
        dropped: healthItem("h-dropped"),
        clock: healthItem("h-clock"),
      };
      healthParts.uplink.k.textContent = "Uplink";
      healthParts.spool.k.textContent = "Spool";
      healthParts.dropped.k.textContent = "Dropped";
      healthParts.clock.k.textContent = "Clock";
    }
    var hp = healthParts, box = $("health");
    var up = !!hh.uplink_connected;
    setData(box, "uplink", up ? "connected" : "disconnected");
    setText(hp.uplink.v, up ? "connected" : "NOT connected");
    setText(hp.uplink.x, !up && hh.uplink_error ? String(hh.uplink_error) : "");
    hp.uplink.x.title = !up && hh.uplink_error ? String(hh.uplink_error) : "";
    setLevel(hp.uplink, up ? "ok" : "bad");

    var recs = typeof hh.spool_records === "number" ? hh.spool_records : 0;
    var fill = hh.spool_max_bytes > 0 ? hh.spool_bytes / hh.spool_max_bytes : null;
    setText(hp.spool.v, recs === 0 ? "empty" : recs + (recs === 1 ? " record" : " records") + " · " + fmtBytes(hh.spool_bytes) +
      (fill !== null && fill >= 0.001 ? " (" + (fill * 100).toFixed(fill < 0.1 ? 1 : 0) + " % full)" : ""));
    tickHealth();

    var dropped = typeof hh.dropped === "number" ? hh.dropped : 0;
    var reasons = [];
    var by = hh.dropped_by_reason || {};
    Object.keys(by).sort().forEach(function (r) {
      if (by[r] > 0) reasons.push(r.replace(/_/g, " ") + " " + by[r]);
    });
    setText(hp.dropped.v, String(dropped));
    setText(hp.dropped.x, dropped > 0 && reasons.length ? "(" + reasons.join(", ") + ")" : "");
    setLevel(hp.dropped, dropped > 0 ? "bad" : "ok");

    var cs = hh.clock_synced;
    setData(box, "clock", cs === true ? "synced" : cs === false ? "unsynced" : "unknown");
    setText(hp.clock.v, cs === true ? "synchronised" : cs === false ? "NOT synchronised" : "sync unknown");
    setLevel(hp.clock, cs === true ? "ok" : cs === false ? "warn" : "muted");

    show($("h-ready"), hh.ready === false);
    setText($("h-version"), hh.version ? String(hh.version) : "");
  }

  function tickHealth() {
    var hh = state && state.health;
    if (!hh || !healthParts) return;
    var recs = typeof hh.spool_records === "number" ? hh.spool_records : 0;
    var age = null;
    if (recs > 0) {
      if (typeof hh.spool_oldest_age_s === "number") age = hh.spool_oldest_age_s + sinceState();
      else {
        var t = parseTS(hh.spool_oldest_ts);
        if (t !== null) age = (serverNow() - t) / 1000;
      }
    }
    setText(healthParts.spool.x, age === null ? "" : "oldest " + fmtAge(age));
    var fill = hh.spool_max_bytes > 0 ? hh.spool_bytes / hh.spool_max_bytes : 0;
    setLevel(healthParts.spool, fill >= 0.9 ? "bad" : fill >= 0.5 || (age !== null && age > 300) ? "warn" : "ok");
  }

  // ------------------------------------------------------------- header

  function gatewayLine() { return state && state.gateway && state.gateway.line ? String(state.gateway.line) : ""; }

  function renderHeader(doc) {
    var gw = doc.gateway || {};
    var id = gw.id ? String(gw.id) : (doc.health && doc.health.gateway) || "edgegw";
    setText($("gw-id"), id);
    var where = [];
    if (gw.site) where.push("site " + gw.site);
    if (gw.line) where.push("line " + gw.line);
    setText($("gw-where"), where.join(" · "));
    var f = doc.filter || {}, fm = list(f.machines), fb = [];
    if (f.line) fb.push("line " + f.line);
    if (fm.length) fb.push((fm.length > 1 ? "machines " : "machine ") + fm.join(", "));
    setText($("filter"), fb.length ? "Showing " + fb.join(" · ") : "");
    show($("filter"), fb.length > 0);
    var downs = list(doc.machines).filter(function (m) { return m.state === "down"; }).length;
    var title = (downs ? downs + " DOWN · " : "") + id + " · edgegw";
    if (document.title !== title) document.title = title;
  }

  // -------------------------------------------------------------- render

  var state = null;

  function render() {
    renderHeader(state);
    renderMachines(list(state.machines));
    renderAlerts(list(state.alerts));
    renderSensors(list(state.sensors));
    if (state.health) renderHealth(state.health);
  }

  function forEachChild(id, fn) {
    var box = $(id);
    for (var i = 0; i < box.children.length; i++) fn(box.children[i]);
  }

  // tick advances everything that runs between events.
  function tick() {
    checkStall();
    if (state && offset !== null) {
      forEachChild("machines", tickMachine);
      forEachChild("alerts-firing", tickAlert);
      forEachChild("alerts-pending", tickAlert);
      forEachChild("sensors", tickSensor);
      tickHealth();
    }
    renderConnection();
  }

  // The loop wakes just after each of the gateway's whole seconds, so that
  // a running timer changes in step with the clock rather than at random.
  function loop() {
    tick();
    var now = offset === null ? Date.now() : serverNow();
    var wait = 1000 - (((now % 1000) + 1000) % 1000) + 20;
    setTimeout(loop, wait);
  }

  // ---------------------------------------------------------- connection

  var es = null;            // the EventSource in use
  var reopenTimer = null;
  var openedAt = 0;         // performance.now() when es was made
  var lastEventAt = null;   // performance.now() of the last state event
  var lostAt = null;        // performance.now() since when not live
  var connection = "connecting";

  function setConnection(c) {
    if (c === "live") lostAt = null;
    else if (lostAt === null) lostAt = performance.now();
    connection = c;
    renderConnection();
  }

  function renderConnection() {
    setData(body, "connection", connection);
    var label;
    if (connection === "live") label = "● LIVE";
    else if (connection === "connecting") label = "CONNECTING…";
    else label = "RECONNECTING · " + fmtAge((performance.now() - lostAt) / 1000);
    setText($("conn"), label);
    setText($("last-update"), lastEventAt === null ? "never" : fmtAge((performance.now() - lastEventAt) / 1000) + " ago");
  }

  function connect() {
    clearTimeout(reopenTimer);
    reopenTimer = null;
    if (es) es.close();
    es = null;
    openedAt = performance.now();
    var src;
    try {
      src = new EventSource("events" + location.search);
    } catch (e) {
      scheduleReopen();
      return;
    }
    es = src;
    src.addEventListener("state", function (ev) { if (src === es) onState(ev); });
    src.onerror = function () {
      if (src !== es) return;
      setConnection("reconnecting");
      // CONNECTING: the browser retries by itself (retry: 2000). CLOSED:
      // it gave up (an answer other than a 200 event stream): start again.
      if (src.readyState === 2) {
        scheduleReopen();
        probe();
      }
    };
  }

  function scheduleReopen() {
    if (reopenTimer === null) reopenTimer = setTimeout(connect, REOPEN_MS);
  }

  // A stream that stays open but stops carrying events (a proxy holding
  // it, a gateway stuck mid-write) is closed and opened anew.
  function checkStall() {
    if (reopenTimer !== null || !es) return;
    var last = Math.max(openedAt, lastEventAt === null ? 0 : lastEventAt);
    if (performance.now() - last > STALL_MS) {
      setConnection("reconnecting");
      connect();
    }
  }

  // After the stream was refused, ask the same question on a plain GET:
  // a filter naming a line or machine the gateway does not have is a 400
  // with an explanation that belongs on the screen.
  function probe() {
    fetch("api/state" + location.search, { cache: "no-store" }).then(function (r) {
      if (r.status !== 400) return null;
      return r.text().then(function (t) { showProblem(t.trim() || "the gateway refused this page's filter"); });
    }).catch(function () {});
  }

  function showProblem(t) {
    setText($("problem"), t);
    show($("problem"), !!t);
  }

  function onState(ev) {
    var perf = performance.now();
    var doc;
    try {
      doc = JSON.parse(ev.data);
    } catch (e) {
      showProblem("The gateway sent data this page cannot read.");
      return;
    }
    if (!doc || typeof doc !== "object") return;
    lastEventAt = perf;
    var srv = parseTS(doc.now);
    anchor(srv === null ? Date.now() : srv, perf);
    state = doc;
    setConnection("live");
    try {
      render();
      showProblem("");
    } catch (e) {
      // One odd record must not take the whole screen down.
      console.error("edgegw: render", e);
      showProblem("The page could not show everything the gateway sent.");
    }
  }

  // ----------------------------------------------------------------- ack

  var ackDialog = $("ack-dialog");
  var ackRule = null;
  var memToken = null;  // when sessionStorage is not available

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return memToken; }
  }
  function setToken(t) {
    memToken = t;
    try { if (t === null) sessionStorage.removeItem(TOKEN_KEY); else sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* memory only */ }
  }

  function requestAck(a) {
    if (KIOSK || !a || ackInflight.has(a.rule)) return;
    var tok = getToken();
    if (tok) sendAck(a, tok);
    else openAckDialog(a, "");
  }

  function openAckDialog(a, err) {
    ackRule = a;
    setText($("ack-what"), (a.message ? a.message + " — " : "") + a.rule);
    setText($("ack-error"), err);
    show($("ack-error"), !!err);
    $("ack-token").value = "";
    $("ack-submit").disabled = false;
    if (!ackDialog.open) {
      if (typeof ackDialog.showModal === "function") ackDialog.showModal();
      else ackDialog.setAttribute("open", "");
    }
    $("ack-token").focus();
  }

  function closeAckDialog() {
    ackRule = null;
    if (!ackDialog.open) return;
    if (typeof ackDialog.close === "function") ackDialog.close();
    else ackDialog.removeAttribute("open");
  }

  function sendAck(a, token) {
    var rule = a.rule;
    ackInflight.add(rule);
    refreshAlertButtons();
    $("ack-submit").disabled = true;
    var url = "api/alerts/" + encodeURIComponent(rule) + "/ack";
    fetch(url, { method: "POST", cache: "no-store", headers: { Authorization: "Bearer " + token } })
      .then(function (r) {
        return r.text().then(function (t) { return { status: r.status, text: t.trim() }; }, function () { return { status: r.status, text: "" }; });
      })
      .then(function (res) {
        ackInflight.delete(rule);
        $("ack-submit").disabled = false;
        if (res.status === 204 || res.status === 200) {
          setToken(token);
          ackDone.set(rule, performance.now());
          closeAckDialog();
          notice("Acknowledged: " + (a.message || rule), "ok");
        } else if (res.status === 401) {
          setToken(null);
          openAckDialog(a, "Wrong token. Try again.");
        } else if (res.status === 403) {
          closeAckDialog();
          notice("Acknowledging is disabled on this gateway.", "bad");
        } else if (res.status === 404 || res.status === 409) {
          closeAckDialog();
          notice(rule + ": " + (res.text || "HTTP " + res.status), "warn");
        } else {
          closeAckDialog();
          notice("Acknowledging " + rule + " failed: HTTP " + res.status + (res.text ? " " + res.text : ""), "bad");
        }
        refreshAlertButtons();
      })
      .catch(function () {
        ackInflight.delete(rule);
        $("ack-submit").disabled = false;
        if (ackDialog.open) {
          setText($("ack-error"), "The gateway did not answer. Try again.");
          show($("ack-error"), true);
        } else notice("The gateway did not answer. Try again.", "bad");
        refreshAlertButtons();
      });
  }

  var noticeTimer = null;
  function notice(text, level) {
    var n = $("notice");
    setText(n, text);
    n.className = level || "";
    show(n, true);
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { show(n, false); }, NOTICE_MS);
  }

  if (KIOSK) ackDialog.remove();   // kiosk: no controls at all
  else {
    $("ack-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var tok = $("ack-token").value.trim();
      if (!tok || !ackRule || ackInflight.has(ackRule.rule)) return;
      sendAck(ackRule, tok);
    });
    $("ack-cancel").addEventListener("click", closeAckDialog);
    ackDialog.addEventListener("close", function () { ackRule = null; });
    $("notice").addEventListener("click", function () { show($("notice"), false); });
  }

  // ---------------------------------------------------------------- start

  renderConnection();
  connect();
  loop();
})();
