// Every page has its own browser-tab title (Gradio gives every route the app's one title, and sets it again
// as the page renders): the title for this path, kept whenever something else writes it. app/main.py fills in
// the titles (path -> title) in place of the placeholder below.
(() => {
  const titles = __TITLES__;
  const want = titles[location.pathname.replace(/\/+$/, "") || "/"] || titles["/"];
  const keep = () => { if (document.title !== want) document.title = want; };
  keep();
  new MutationObserver(keep).observe(document.head, {subtree: true, childList: true, characterData: true});
})();
