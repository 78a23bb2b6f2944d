// Figure titles that fit (loaded into every page's head by app/main.py). Plotly never wraps a title; the server
// (lessons.plots.responsive) wraps it for a phone and keeps the unwrapped text in layout.meta.title. Here it is
// wrapped again to the figure's real width, less the room of Plotly's toolbar (the modebar, top right), whenever
// the figure is drawn or resized; Plotly's automargin then keeps it above the plot, its panels and its legend.
// The PNG and SVG buttons export a slide (1920 x 1080): the figure laid out at 960 x 540 and drawn at twice the
// scale, its title wrapped for that width, so every text is at least twice its 8-14 px on screen.
(() => {
  const SLIDE = {width: 960, height: 540, scale: 2};
  const ruler = document.createElement("canvas").getContext("2d");

  // Word-wrap to a width in pixels, measured with the title's own font (a system font stack differs from machine to
  // machine: an average character width was wrong by up to a fifth).
  const wrap = (text, width, font) => {
    ruler.font = font;
    const fits = (line) => ruler.measureText(line.replace(/<[^>]+>/g, "")).width <= width;
    return text.split("<br>").map((part) => {
      const lines = [];
      let line = "";
      for (const word of part.split(" ")) {
        const longer = line ? line + " " + word : word;
        if (line && !fits(longer)) { lines.push(line); line = word; } else line = longer;
      }
      lines.push(line);
      return lines.join("<br>");
    }).join("<br>");
  };

  const fontOf = (gd) => {
    const f = (gd._fullLayout && gd._fullLayout.title && gd._fullLayout.title.font) || {};
    return `${f.size || 14}px ${f.family || "sans-serif"}`;
  };

  const titleFor = (layout, width, toolbar, font) => {
    const raw = layout && layout.meta && layout.meta.title;
    if (!raw) return null;
    return wrap(raw, Math.max(160, width * 0.96 - 8 - toolbar), font);
  };

  // The title's text and its pad: Plotly draws a bottom-anchored title's later lines below the first, over the
  // plot, unless the pad makes their room (lessons.plots.TITLE_LINE per line).
  const lines = (layout, text) => {
    const pad = (layout.meta.title_pad || 8) + 19 * (text.split("<br>").length - 1);
    const top = layout.meta.title_top || 40, t = Math.max(top, pad + 25);
    const set = {"title.text": text, "title.pad.b": pad, "margin.t": t};
    if (layout.meta.base_height) set.height = layout.meta.base_height + t - top;  // the plot keeps its height
    return set;
  };

  const fit = (gd) => {
    if (!gd._fullLayout || !window.Plotly) return;
    const bar = gd.querySelector(".modebar");
    const toolbar = bar ? bar.getBoundingClientRect().width + 8 : 0;
    const text = titleFor(gd.layout, gd._fullLayout.width, toolbar, fontOf(gd));
    if (text && gd.layout.title && text !== gd.layout.title.text) window.Plotly.relayout(gd, lines(gd.layout, text));
  };

  const watch = () => document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
    if (!gd.on) return;
    if (!gd._insideLlamaFit) { gd._insideLlamaFit = true; gd.on("plotly_afterplot", () => fit(gd)); }
    fit(gd);
  });
  let pending = null;
  new MutationObserver(() => { clearTimeout(pending); pending = setTimeout(watch, 100); })
    .observe(document.documentElement, {subtree: true, childList: true});

  // The figure as a slide: {figure, options} for Plotly.toImage / downloadImage (the tests read it too).
  const slide = (gd, format) => {
    const layout = {...gd.layout};
    const text = titleFor(layout, SLIDE.width, 0, fontOf(gd));
    if (text) {
      const set = lines(layout, text);
      layout.title = {...layout.title, text, pad: {...(layout.title.pad || {}), b: set["title.pad.b"]}};
      layout.margin = {...(layout.margin || {}), t: set["margin.t"]};
      if (set.height) layout.height = set.height;
    }
    return {figure: {data: gd.data, layout, config: {}},
            options: {format, width: SLIDE.width, height: SLIDE.height, scale: SLIDE.scale}};
  };
  const save = (id, format, filename) => {
    const gd = document.querySelector("#" + id + " .js-plotly-plot");
    if (!gd || !window.Plotly) return;
    const s = slide(gd, format);
    window.Plotly.downloadImage(s.figure, {...s.options, filename});
  };
  window.insideLlama = {...(window.insideLlama || {}), slide, save, wrap};
})();
