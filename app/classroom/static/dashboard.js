// The teacher's dashboard (/class?code=CODE#key=KEY): polls GET /api/class/CODE/summary every 2 s with the key in
// the X-Teacher-Key header and draws the counts. The key travels in the URL's fragment (never sent to a server)
// and stays in this tab's sessionStorage. Every text from the server is put on the page as text.
(() => {
  const $ = (id) => document.getElementById(id);
  const code = new URLSearchParams(location.search).get("class") || new URLSearchParams(location.search).get("code") || "";
  const fragKey = new URLSearchParams(location.hash.slice(1)).get("key");
  const store = "inside-llama-teacher-" + code;
  let key = fragKey || sessionStorage.getItem(store) || "";
  if (fragKey) { sessionStorage.setItem(store, fragKey); history.replaceState(null, "", location.pathname + location.search); }
  const revealed = new Set();
  let timer = null, stopped = false;
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const api = "/api/class/" + encodeURIComponent(code);
  const send = (path, method = "GET", body) => fetch(api + path, {method, headers: {"X-Teacher-Key": key, "Content-Type": "application/json"},
                                                                  body: body === undefined ? undefined : JSON.stringify(body)});
  const status = (t) => { $("status").textContent = t; };

  function askKey(message) {
    stopped = true; clearTimeout(timer);
    $("board").hidden = true; $("keyform").hidden = false; status(message || "");
  }
  $("open").addEventListener("click", () => { key = $("key").value.trim(); sessionStorage.setItem(store, key); stopped = false; $("keyform").hidden = true; poll(); });
  $("hide").checked = localStorage.getItem("inside-llama-hide-answers") === "1";
  $("hide").addEventListener("change", () => { localStorage.setItem("inside-llama-hide-answers", $("hide").checked ? "1" : "0"); poll(); });

  function draw(d) {
    $("board").hidden = false;
    $("title").textContent = d.name + (d.ended ? " (ended: no more answers are recorded)" : "");
    $("code").textContent = d.code;
    const join = location.origin + "/?class=" + d.code;
    $("join").textContent = join; $("join").href = join;
    if (!$("qr").src) $("qr").src = "/classroom/qr.svg?code=" + encodeURIComponent(d.code);
    $("notice").hidden = !d.notice; $("notice").textContent = d.notice || "";
    $("joined").textContent = d.students_joined; $("active").textContent = d.students_active; $("answers").textContent = d.answers_stored;
    $("pinned").textContent = d.pinned ? "Pinned: " + d.pinned : "Nothing pinned.";
    $("end").disabled = d.ended;
    const most = Math.max(1, ...d.pages.map((p) => p.visits));
    const lessons = d.pages.map((p) => {
      const row = el("div", "row"), track = el("span", "track"), fill = el("span", "fill");
      fill.style.width = (100 * p.visits / most) + "%"; track.append(fill);
      row.append(el("span", "label", p.title), track, el("span", "", p.visits + " student" + (p.visits === 1 ? "" : "s")));
      return row;
    });
    $("lessons").replaceChildren(...lessons);
    const hide = $("hide").checked;
    const cards = d.questions.map((q) => {
      const card = el("div", "question");
      card.append(el("h3", "", q.question), el("div", "muted", `${q.page_title} · ${q.answered} predicted` +
        (q.no_pick ? ` · ${q.no_pick} revealed without predicting` : "") +
        (Object.keys(q.measured_all).length > 1 ? ` · students' pages measured different answers (${Object.entries(q.measured_all).map(([a, n]) => a + ": " + n).join(", ")})` : "")));
      const show = !hide || revealed.has(q.qid);
      for (const c of q.choices) {
        const n = q.counts[c] || 0, pct = q.answered ? Math.round(100 * n / q.answered) : 0;
        const row = el("div", "row" + (show && c === q.measured ? " measured" : "")), track = el("span", "track"), fill = el("span", "fill");
        fill.style.width = pct + "%"; track.append(fill);
        row.append(el("span", "label", c), track, el("span", "", `${n} (${pct}%)`));
        card.append(row);
      }
      if (q.measured === null) card.append(el("div", "muted", "No measured answer yet."));
      else if (!show) {
        const b = el("button", "", "Reveal the measured answer");
        b.addEventListener("click", () => { revealed.add(q.qid); poll(); });
        card.append(b);
      }
      return card;
    });
    if (!cards.length) cards.push(el("p", "muted", "No predictions yet: they appear here as students reveal answers."));
    $("questions").replaceChildren(...cards);
  }

  async function poll() {
    clearTimeout(timer);
    if (!key) return askKey("");
    let r;
    try { r = await send("/summary"); } catch (e) { status("The server cannot be reached; trying again."); timer = setTimeout(poll, 4000); return; }
    if (r.status === 401 || r.status === 403) return askKey("That key does not open this class (or there is no such class).");
    if (r.status === 429) { status("Too many wrong keys from this address: wait a few minutes."); return; }
    if (!r.ok) { status("The server answered " + r.status + "; trying again."); timer = setTimeout(poll, 4000); return; }
    draw(await r.json());
    status("Updated " + new Date().toLocaleTimeString());
    if (!stopped) timer = setTimeout(poll, 2000);
  }

  $("csv").addEventListener("click", async () => {
    const r = await send("/answers.csv");
    if (!r.ok) { status("Could not export (" + r.status + ")."); return; }
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob()); a.download = "class-" + code + "-answers.csv";
    document.body.append(a); a.click(); a.remove();
  });
  $("end").addEventListener("click", async () => {
    if (!confirm("End the class? Students' answers will no longer be recorded; the data stays until you delete it.")) return;
    await send("/end", "POST"); poll();
  });
  $("delete").addEventListener("click", async () => {
    if (!confirm("Delete the class and every answer in it? This cannot be undone.")) return;
    const r = await send("", "DELETE");
    if (r.ok) { stopped = true; clearTimeout(timer); sessionStorage.removeItem(store); $("board").hidden = true; status("The class and its data are deleted."); }
  });
  const pin = async (view) => {
    const r = await send("/pin", "POST", {view});
    const d = await r.json().catch(() => ({}));
    status(r.ok ? (view ? "Pinned: students see a link to this view in their banner." : "Unpinned.") : (d.detail || "Could not pin."));
    poll();
  };
  $("pinbtn").addEventListener("click", () => pin($("pin").value.trim()));
  $("unpin").addEventListener("click", () => pin(""));
  document.addEventListener("visibilitychange", () => { if (!document.hidden && !stopped) poll(); });
  if (!code) status("No class code in the address: open the dashboard link you were given when the class started.");
  else poll();
})();
