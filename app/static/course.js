// The course skeleton in the browser (app/widgets.py): answers hidden until Reveal, "Go deeper" sections opened by
// a link, and each lesson's "check yourself" list kept in the browser's storage while the learner browses.
(() => {
  const KEY = "inside-llama-answers";
  let memory = {};  // storage blocked (a third-party frame): the answers are kept for this visit only
  const load = () => {
    try { return JSON.parse(localStorage.getItem(KEY) || "{}"); } catch (e) { return memory; }
  };
  const save = (all) => {
    memory = all;
    try { localStorage.setItem(KEY, JSON.stringify(all)); } catch (e) { /* kept in memory */ }
  };
  const lesson = () => location.pathname.replace(/^\/+|\/+$/g, "") || "map";
  const resultOf = (text) => {
    const t = (text || "").trim();
    if (t.startsWith("✅")) return "right";
    if (t.startsWith("❌")) return "wrong";
    if (t.startsWith("You did not pick")) return "no pick";
    return null;  // a notice (bad input), not a verdict
  };
  const questionText = (id) => {
    const el = document.getElementById("question-" + id);
    return el ? el.textContent.replace(/^\s*Predict:\s*/, "").trim() : id;
  };
  const MARK = {"right": "✅ right", "wrong": "❌ not this time", "no pick": "revealed without a prediction"};

  function fill() {
    const all = load()[lesson()] || {};
    document.querySelectorAll(".check-yourself .check-list").forEach((ol) => {
      const items = [...document.querySelectorAll(".predict-question[id^=\"question-\"]")].map((q) => {
        const id = q.id.replace(/^question-/, "");
        const a = all[id];
        const li = document.createElement("li");
        const what = document.createElement("span");
        what.textContent = questionText(id) + " ";
        const res = document.createElement("strong");
        res.textContent = a ? `${a.pick ? "you picked “" + a.pick + "”: " : ""}${MARK[a.result]}` : "not answered yet";
        li.append(what, res);
        return li;
      });
      ol.replaceChildren(...items);
    });
  }

  function reveal(id) {
    document.documentElement.classList.add("revealed-" + id);
    let style = document.getElementById("reveal-style-" + id);
    if (!style) {
      style = document.createElement("style");
      style.id = "reveal-style-" + id;
      style.textContent = `html.revealed-${id} .until-${id} { display: flex !important; }`;
      document.head.appendChild(style);
    }
    setTimeout(() => window.dispatchEvent(new Event("resize")), 50);  // figures drawn while hidden take their width
  }

  function record(id, pick, verdict) {
    const result = resultOf(verdict);
    if (!result) return;
    const all = load();
    all[lesson()] = all[lesson()] || {};
    all[lesson()][id] = {pick: pick || "", result: result, at: Date.now()};
    save(all);
    fill();
  }

  // The fragment's anchor: its first part without "=" (a link's long values share the fragment: app/share.py).
  function anchor() {
    return decodeURIComponent(location.hash.slice(1).split("&").find((p) => p && !p.includes("=")) || "");
  }

  function openDeeper() {
    const id = anchor();
    if (!id.startsWith("deeper-")) return false;
    const acc = document.getElementById(id);
    if (!acc) return false;
    const button = acc.querySelector("button.label-wrap, .label-wrap, button");
    if (button && !acc.querySelector(".label-wrap.open")) button.click();
    acc.scrollIntoView({block: "start"});
    return true;
  }

  window.insideLlama = Object.assign(window.insideLlama || {}, {reveal, record, fill});
  window.addEventListener("hashchange", openDeeper);
  // The page is built by Gradio after load, and Gradio may redraw a part at any time: fill the list whenever it
  // is missing its questions, and open a linked "Go deeper" section once it exists.
  let opened = !anchor().startsWith("deeper-");
  let pending = null;
  const tick = () => {
    const n = document.querySelectorAll(".predict-question[id^=\"question-\"]").length;
    document.querySelectorAll(".check-yourself .check-list").forEach((ol) => {
      if (ol.childElementCount !== n) fill();
    });
    if (!opened) opened = openDeeper();
  };
  new MutationObserver(() => { clearTimeout(pending); pending = setTimeout(tick, 200); })
    .observe(document.documentElement, {subtree: true, childList: true});
})();
