// Keyboard users (loaded into every page's head by app/main.py).
// Gradio fires a slider's `release` on pointer-up only (and on leaving its number box), so arrow keys on a slider
// would never run the model: releasing an arrow (or Home/End/Page) key counts as letting go of the slider, and
// Enter in a slider's number box applies the typed value at once. app/controls.py makes every event a slider runs
// "always_last", so presses made while the server answers count too (one more run with the last value).
(() => {
  const keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"];
  const release = (t) => t.dispatchEvent(new PointerEvent("pointerup", {bubbles: true}));
  document.addEventListener("keyup", (e) => {
    const t = e.target;
    if (t && t.type === "range" && keys.includes(e.key)) release(t);
  });
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const label = (t && t.getAttribute && t.getAttribute("aria-label")) || "";
    if (e.key === "Enter" && t.type === "number" && label.startsWith("number input for")) {
      e.preventDefault();
      release(t);
    }
  });
})();
