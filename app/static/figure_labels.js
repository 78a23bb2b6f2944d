// Screen readers: every figure is an image whose label is its description (lessons.plots.describe, computed from
// the figure's data on the server and carried in layout.meta.description), set again whenever a figure is redrawn.
(() => {
  const label = () => document.querySelectorAll('.js-plotly-plot').forEach((gd) => {
    const d = gd.layout && gd.layout.meta && gd.layout.meta.description;
    if (d && gd.getAttribute('aria-label') !== d) { gd.setAttribute('role', 'img'); gd.setAttribute('aria-label', d); }
  });
  let pending = null;
  new MutationObserver(() => { clearTimeout(pending); pending = setTimeout(label, 150); })
    .observe(document.documentElement, {subtree: true, childList: true});
})();
