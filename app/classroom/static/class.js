// Class mode in the student's browser (every page loads this file; app/classroom/__init__.py::head).
// - Joining: by the code or nickname form on the course map, or by a link: /?class=CODE asks for an optional
//   nickname, a lesson opened with ?class=CODE joins at once (anonymous). The class (code, random student id, name,
//   nickname) is kept in localStorage and in the URL (?class=CODE), and course links keep it.
// - A small banner at the bottom shows the class, the teacher's pinned view and a Leave button.
// - Each lesson visit and each revealed prediction is posted to the class API (app/classroom/api.py); after a
//   reveal the class's split on that question is shown under the answer once enough classmates answered.
// Everything a person typed is put on the page as text (textContent), never as markup.
(() => {
  if (window.insideLlamaClass) return;
  const STORE = "inside-llama-class";
  const ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ";
  const page = () => location.pathname.replace(/\/+$/, "") || "/";
  const load = () => { try { return JSON.parse(localStorage.getItem(STORE) || "null"); } catch (e) { return null; } };
  const save = (s) => { try { s ? localStorage.setItem(STORE, JSON.stringify(s)) : localStorage.removeItem(STORE); } catch (e) {} };
  const norm = (text) => {
    const raw = String(text || "").toUpperCase().replace(/[^A-Z0-9]/g, "");
    if (raw.length !== 8 || [...raw].some((c) => !ALPHABET.includes(c))) return null;
    return raw.slice(0, 4) + "-" + raw.slice(4);
  };
  const cssId = (qid) => "class-q-" + String(qid).replace(/[^A-Za-z0-9_-]/g, "-");
  const el = (tag, props = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") e.textContent = v; else if (k === "on") Object.entries(v).forEach(([n, f]) => e.addEventListener(n, f));
      else e.setAttribute(k, v);
    }
    kids.forEach((k) => k && e.append(k));
    return e;
  };
  async function call(path, body, method = "POST", retry = true) {
    try {
      const r = await fetch(path, {method, headers: {"Content-Type": "application/json"},
                                   body: body === undefined ? undefined : JSON.stringify(body), keepalive: true});
      let data = {};
      try { data = await r.json(); } catch (e) {}
      return {ok: r.ok, status: r.status, data};
    } catch (e) {  // a dropped connection: once more after a second (the class counts a first answer only)
      if (retry) { await new Promise((ok) => setTimeout(ok, 1000)); return call(path, body, method, false); }
      return {ok: false, status: 0, data: {detail: "The server cannot be reached."}};
    }
  }
  const api = (code) => "/api/class/" + encodeURIComponent(code);

  // ---------------------------------------------------------------- the URL keeps ?class=CODE
  function markUrl(code) {
    const url = new URL(location.href);
    if (code) url.searchParams.set("class", code); else url.searchParams.delete("class");
    if (url.href !== location.href) history.replaceState(history.state, "", url);
  }
  document.addEventListener("click", (ev) => {
    const s = load();
    const a = ev.target.closest && ev.target.closest("a[href]");
    if (!s || !a) return;
    const url = new URL(a.getAttribute("href"), location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname === "/class") return;
    if (!url.searchParams.has("class")) { url.searchParams.set("class", s.code); a.setAttribute("href", url.pathname + url.search + url.hash); }
  }, true);

  // ---------------------------------------------------------------- the banner
  let info = null;
  function banner(message) {
    let bar = document.getElementById("class-banner");
    const s = load();
    if (!s && !message) { if (bar) bar.remove(); document.body.classList.remove("in-class"); return; }
    if (!bar) { bar = el("div", {id: "class-banner", role: "region", "aria-label": "Class"}); document.body.append(bar); }
    document.body.classList.add("in-class");
    bar.replaceChildren();
    if (message) bar.append(message);
    if (s) {
      bar.append(el("span", {class: "class-name", text: "🎓 " + s.name + " (" + s.code + ")"}),
                 el("span", {class: "class-you", text: "you: " + (s.nickname || "anonymous")}));
      if (info && info.ended) bar.append(el("span", {class: "class-ended", text: "This class has ended: answers are no longer recorded."}));
      if (info && info.pinned) {
        const u = new URL(info.pinned, location.origin);
        u.searchParams.set("class", s.code);
        const here = u.pathname === page();
        bar.append(el("a", {class: "class-pinned", href: u.pathname + u.search, target: "_self",
                            text: "📌 Your teacher's view" + (here ? " (this page)" : ": open it")}));
      }
      bar.append(el("button", {type: "button", class: "class-leave", text: "Leave class", on: {click: leave}}));
    }
  }
  function leave() {
    save(null); info = null; markUrl(null); banner();
    const msg = document.getElementById("class-join-msg");
    if (msg) msg.textContent = "You left the class.";
  }
  async function refreshInfo() {
    const s = load();
    if (!s) return;
    const r = await call(api(s.code), undefined, "GET");
    if (r.status === 404) { save(null); info = null; banner(el("span", {text: "Your class is gone (ended and deleted, or expired)."})); return; }
    if (r.ok) { info = r.data; banner(); }
  }

  // ---------------------------------------------------------------- joining, visits, answers
  async function join(code, nickname) {
    const c = norm(code);
    if (!c) return "A class code has 8 letters and digits, like K7QM-2MHX (no 0, O, 1, I, L, U or V).";
    const r = await call(api(c) + "/join", {nickname: String(nickname || "").slice(0, 200)});
    if (!r.ok) return r.data.detail || "Could not join the class.";
    save({code: r.data.code, student: r.data.student, name: r.data.name, nickname: r.data.nickname});
    markUrl(r.data.code);
    await visit();
    await refreshInfo();
    banner();
    return "";
  }
  async function visit() {
    const s = load();
    if (!s) return;
    const r = await call(api(s.code) + "/visit", {student: s.student, page: page()});
    if (r.status === 404) refreshInfo();
  }
  async function answer(qid, choice, verdict) {
    const s = load();
    const first = String(verdict || "").trim().split("\n")[0];
    if (!s || !/^(✅|❌|You did not pick)/.test(first)) return;
    const r = await call(api(s.code) + "/answer", {student: s.student, qid, page: page(),
                                                   choice: choice === undefined ? null : choice, verdict: first});
    showSplit(qid, r);
  }
  function showSplit(qid, r) {
    const target = document.querySelector("." + cssId(qid));
    if (!target) return;
    let box = target.parentElement.querySelector(":scope > .class-split[data-q='" + cssId(qid) + "']");
    if (!box) { box = el("div", {class: "class-split", "data-q": cssId(qid), role: "status"}); target.insertAdjacentElement("afterend", box); }
    box.replaceChildren();
    if (!r.ok) { box.append(el("p", {text: "Not recorded for the class: " + (r.data.detail || "the server cannot be reached.")})); return; }
    const d = r.data;
    if (!d.class) {
      box.append(el("p", {text: `${d.answered} of your class answered so far; the class's split shows from ${d.min_shown} answers.`}));
      return;
    }
    box.append(el("p", {class: "class-split-title", text: `How your class predicted (${d.class.n} students):`}));
    for (const c of d.choices) {
      const n = d.class.counts[c] || 0, pct = Math.round((100 * n) / d.class.n);
      const bar = el("span", {class: "class-bar"}); bar.style.width = pct + "%";
      box.append(el("div", {class: "class-split-row"}, el("span", {class: "class-split-label", text: c}),
                    el("span", {class: "class-bar-track"}, bar), el("span", {class: "class-split-n", text: `${n} (${pct}%)`})));
    }
  }

  // ---------------------------------------------------------------- the course map's "Teach with this course" block
  async function startClass(btn) {
    const out = document.getElementById("class-started");
    const name = (document.getElementById("class-name") || {}).value || "";
    btn.disabled = true;
    const r = await call("/api/class", {name});
    btn.disabled = false;
    out.hidden = false;
    out.replaceChildren();
    if (!r.ok) { out.append(el("p", {class: "class-error", text: r.data.detail || "Could not start a class."})); return; }
    const d = r.data;
    const qr = el("img", {class: "class-qr", src: "/classroom/qr.svg?code=" + encodeURIComponent(d.code), alt: "QR code of the join link"});
    const key = el("input", {class: "class-key", readonly: "", value: d.teacher_key, "aria-label": "Teacher key", id: "class-teacher-key"});
    out.append(
      el("p", {class: "class-code-label", text: "Students join with the code"}),
      el("p", {class: "class-code", id: "class-code", text: d.code}),
      el("p", {}, el("span", {text: "or the link "}), el("a", {href: d.join_url, id: "class-join-url", text: d.join_url})),
      qr,
      el("p", {}, el("button", {type: "button", text: "Show code and QR full screen", on: {click: () => projector(d)}})),
      el("div", {class: "class-key-box", role: "alert"},
         el("p", {text: "Teacher key: shown only this once. Copy it now and keep it private: with it anyone can see the class's answers, end it or delete it."}),
         key,
         el("p", {}, el("a", {href: d.dashboard_url, target: "_blank", rel: "noopener", id: "class-dashboard-link", text: "Open the class dashboard"}),
            el("span", {text: " (the link holds the key: keep it private too). The class and its answers are deleted after " + d.expires_in_days + " days."}))));
  }
  function projector(d) {
    const shade = el("div", {class: "class-projector", role: "dialog", "aria-label": "Join code"},
      el("p", {class: "class-projector-code", text: d.code}),
      el("img", {src: "/classroom/qr.svg?code=" + encodeURIComponent(d.code), alt: "QR code of the join link"}),
      el("p", {class: "class-projector-url", text: d.join_url}),
      el("button", {type: "button", text: "Close", on: {click: () => shade.remove()}}));
    document.body.append(shade);
    shade.querySelector("button").focus();
  }
  document.addEventListener("click", async (ev) => {
    const t = ev.target;
    if (!(t instanceof Element)) return;
    if (t.id === "class-start") startClass(t);
    if (t.id === "class-join") {
      const msg = document.getElementById("class-join-msg");
      msg.textContent = "Joining…";
      const err = await join(document.getElementById("class-join-code").value, document.getElementById("class-join-nick").value);
      msg.textContent = err || "You joined the class: your predictions now count for it.";
    }
  });

  // ---------------------------------------------------------------- start on every page
  async function start() {
    const linked = new URLSearchParams(location.search).get("class");
    const s = load();
    if (linked !== null) {
      const c = norm(linked);
      if (!c) { banner(el("span", {class: "class-error", text: "The link's class code is not a valid code."})); return; }
      if (!s || s.code !== c) {
        if (s) save(null);
        if (page() === "/") { askNickname(c); return; }
        const err = await join(c, "");
        if (err) banner(el("span", {class: "class-error", text: err}));
        return;
      }
    }
    if (s) { markUrl(s.code); banner(); await visit(); await refreshInfo(); }
  }
  function askNickname(code) {
    const nick = el("input", {id: "class-banner-nick", maxlength: "24", placeholder: "nickname (optional)", "aria-label": "Nickname (optional)"});
    const status = el("span", {role: "status"});
    const go = el("button", {type: "button", id: "class-banner-join", text: "Join", on: {click: async () => {
      status.textContent = "Joining…";
      const err = await join(code, nick.value);
      if (err) status.textContent = err;
    }}});
    banner(el("span", {class: "class-ask"}, el("span", {text: "Join class " + code + " "}), nick, go,
              el("button", {type: "button", text: "Not now", on: {click: () => { markUrl(null); banner(); }}}), status));
  }
  window.insideLlamaClass = {answer, join, leave, state: load};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
  setInterval(() => { if (load() && !document.hidden) refreshInfo(); }, 30000);
  // a page changed without a reload (the page bar may route inside the app): still one visit per page
  let shown = page();
  setInterval(() => { if (page() !== shown) { shown = page(); if (load()) { markUrl(load().code); visit(); } } }, 1000);
})();
