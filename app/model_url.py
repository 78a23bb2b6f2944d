"""The picked model travels in the URL, not only in browser storage.

A Space opened inside the huggingface.co page runs in a third-party frame, where browsers may block storage: the
picker's choice (a gr.BrowserState) is then lost on the next page and lessons would silently use the course model.
So the choice is also kept in the address: the course map's picker writes `model=<name>` into its URL
(history.replaceState, no reload; `WRITE_MODEL`), every lesson page already keeps `model=` in its URL (app.share),
and a same-site link the learner follows (the course map's list, a lesson's previous/next links, Gradio's page bar)
carries the current page's `model=` along (`HEAD_JS`, in the page head). A page opened with `model=` uses that model
(widgets.model_key, pages.home), whatever the storage holds.
"""

from app.share import MODEL_PARAM

# First in every page's HTML (app.startup.PageHTML puts it there, before Gradio's own scripts): where touching the
# browser's storage throws (a third-party frame with storage blocked), an in-memory stand-in takes its place for
# this page, so Gradio's frontend (its run history, gr.BrowserState) starts instead of stopping at a SecurityError
# and leaving the page half drawn. What it holds is lost on the next page: the URL carries the model.
STORAGE_SHIM = """
(() => {
  for (const name of ["localStorage", "sessionStorage"]) {
    try { const s = window[name]; s.setItem("__inside_llama", "1"); s.removeItem("__inside_llama"); continue; }
    catch (e) { /* blocked: fall through to the stand-in */ }
    const items = new Map();
    const store = {
      getItem: (k) => (items.has(String(k)) ? items.get(String(k)) : null),
      setItem: (k, v) => { items.set(String(k), String(v)); },
      removeItem: (k) => { items.delete(String(k)); },
      clear: () => items.clear(),
      key: (i) => [...items.keys()][i] ?? null,
      get length() { return items.size; },
    };
    const view = new Proxy(store, {ownKeys: () => [...items.keys()],
      getOwnPropertyDescriptor: (t, k) => (items.has(k) ? {value: items.get(k), enumerable: true, configurable: true}
                                                        : Reflect.getOwnPropertyDescriptor(t, k))});
    try { Object.defineProperty(window, name, {configurable: true, get: () => view}); } catch (e) { /* keep */ }
  }
})();
"""

# In the page head: before the browser follows a same-origin link, the current URL's model= is added to it.
HEAD_JS = """
(() => {
  const param = %r;
  const carry = (e) => {
    const a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (!a) return;
    const model = new URL(window.location.href).searchParams.get(param);
    if (!model) return;
    const to = new URL(a.getAttribute("href"), window.location.href);
    if (to.origin !== window.location.origin || to.searchParams.has(param)) return;
    to.searchParams.set(param, model);
    a.setAttribute("href", to.pathname + to.search + to.hash);
  };
  // capture phase: before Gradio's own handlers and before the browser reads the link
  ["click", "auxclick", "contextmenu", "keydown"].forEach((t) => document.addEventListener(t, carry, true));
})();
""" % MODEL_PARAM

# The course map's picker: its model's short name into the page's URL ('' = the course model: no model=).
WRITE_MODEL = """(name) => {
  const url = new URL(window.location.href);
  if (name) url.searchParams.set(%r, name); else url.searchParams.delete(%r);
  window.history.replaceState(window.history.state, "", url);
  return [];
}""" % (MODEL_PARAM, MODEL_PARAM)
