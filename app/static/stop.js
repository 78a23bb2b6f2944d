// The learner's Stop for their own long jobs (app/background.py, StopBoard). Not a Gradio event: while a job streams
// updates, the browser can hold a Gradio event back until the stream ends, so a Stop must not wait for one.
// - Each page makes a random 128-bit token; a click on a job's button (class "stop-arm") counts one more run, and
//   the button's Gradio event reads the id "<token>:<n>" (background.RUN_ID_JS) and carries it to the job.
// - A click on a Stop button (class "stop-button") posts the last run id to /api/stop at once.
// Both listeners run in the capture phase, before Gradio's own, so the id exists before the event reads it.
(() => {
  if (window.insideLlamaStop) return;
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);  // (crypto.randomUUID needs https; this works on a school server's plain http)
  const page = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  let n = 0;
  const current = () => (n ? page + ":" + n : "");
  const stop = () => {
    if (!n) return;
    fetch("/api/stop", {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({run: current()}), keepalive: true}).catch(() => {});
  };
  document.addEventListener("click", (e) => {
    const t = e.target && e.target.closest ? e.target : null;
    if (!t) return;
    if (t.closest(".stop-arm")) n += 1;
    else if (t.closest(".stop-button")) stop();
  }, true);
  window.insideLlamaStop = {current, stop};
})();
