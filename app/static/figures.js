// Figure titles that fit (loaded into every page's head by app/main.py). Plotly never wraps a title; the server
// (lessons.plots.responsive) wraps it for a phone and keeps the unwrapped text in layout.meta.title. Here it is
// wrapped again to the figure's real width, less the room of Plotly's toolbar (the modebar, top right), whenever
// the figure is drawn or resized; Plotly's automargin then keeps it above the plot, its panels and its legend.
// The PNG and SVG buttons under a figure export a slide (1920 x 1080): the figure laid out at 960 x 540 and drawn at twice the
// scale, its title wrapped for that width, so every text is at least twice its 8-14 px on screen. The CSV button
// saves the figure's data (`csv`).
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
    if (gd && format === "csv") return download(csv(gd), filename + ".csv");  // the data alone: no Plotly needed
    if (!gd || !window.Plotly) return;
    const s = slide(gd, format);
    window.Plotly.downloadImage(s.figure, {...s.options, filename});
  };

  // A trace's array as a plain array: a list, a typed array, or Plotly's binary form {dtype, bdata, shape} (numpy
  // arrays in a figure's JSON; plotly.js decodes them only into its own _fullData).
  const TYPES = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                 u2: Uint16Array, i1: Int8Array, u1: Uint8Array, u1c: Uint8ClampedArray};
  const array = (v) => {
    if (v == null) return null;
    if (Array.isArray(v)) return v.map((x) => (ArrayBuffer.isView(x) ? Array.from(x) : x));
    if (ArrayBuffer.isView(v)) return Array.from(v);
    if (typeof v === "object" && typeof v.bdata === "string" && TYPES[v.dtype]) {
      const bytes = Uint8Array.from(atob(v.bdata), (c) => c.charCodeAt(0));
      const flat = Array.from(new TYPES[v.dtype](bytes.buffer));
      const shape = String(v.shape || flat.length).split(",").map(Number);
      if (shape.length < 2) return flat;
      return Array.from({length: shape[0]}, (_, r) => flat.slice(r * shape[1], (r + 1) * shape[1]));
    }
    return null;
  };

  // The figure's data as a table, one row per value drawn: trace, x, y, value. A heatmap (any trace with a z grid)
  // gives one row per cell with its x and y labels; any other trace one row per point, with y (a horizontal bar's
  // x) as the value. Missing labels are the positions 0, 1, 2, ...; a gap (null, NaN) is an empty cell; HTML
  // entities in labels are decoded. `fig`: a drawn figure (its element) or {data: [...]}.
  const decoder = document.createElement("textarea");  // one for every cell (a map has thousands of labels)
  const unescape = (text) => {
    if (!text.includes("&")) return text;
    decoder.innerHTML = text;
    return decoder.value;
  };
  const cell = (v) => {
    if (v == null || (typeof v === "number" && Number.isNaN(v))) return "";
    const text = typeof v === "string" ? unescape(v) : String(v);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  };
  const csv = (fig) => {
    const rows = [["trace", "x", "y", "value"]];
    (fig.data || []).forEach((t, i) => {
      const name = t.name || `${t.type || "scatter"} ${i + 1}`;
      const [x, y, z] = ["x", "y", "z"].map((k) => array(t[k]));
      const label = (labels, k) => (labels && k < labels.length ? labels[k] : k);
      if (z && z.length && Array.isArray(z[0])) {
        z.forEach((row, r) => row.forEach((v, c) => rows.push([name, label(x, c), label(y, r), v])));
      } else if (x || y) {
        const n = Math.max(x ? x.length : 0, y ? y.length : 0);
        for (let k = 0; k < n; k++) {
          const xv = label(x, k), yv = y && k < y.length ? y[k] : null;
          rows.push([name, xv, yv, yv == null ? xv : (t.orientation === "h" ? xv : yv)]);
        }
      }
    });
    return rows.map((row) => row.map(cell).join(",")).join("\n") + "\n";
  };
  const download = (text, filename) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
    a.download = filename;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  // The buttons under every figure (app/widgets.py figure_tools): one listener for the whole page.
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest("button[data-save][data-figure]");
    if (b) save(b.dataset.figure, b.dataset.save, b.dataset.figure);
  });
  window.insideLlama = {...(window.insideLlama || {}), slide, save, wrap, csv};
})();
