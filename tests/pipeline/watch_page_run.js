// Runs the watch page's script against a /status document in node (DOM stubbed: watch_dom_stub.js)
// and prints what it rendered, as JSON.
const fs = require("fs");
const path = require("path");
require(path.join(__dirname, "watch_dom_stub.js"));
const page = fs.readFileSync(process.argv[2], "utf8");
const script = page.slice(page.indexOf("<script>") + 8, page.indexOf("</script>"));
const status = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
global.fetch = async () => ({ json: async () => status });
eval(script + "\nglobal.__render = render;");
setTimeout(() => {
  global.__render(status);  // a second refresh updates in place
  const box = document.getElementById("sessions");
  const out = box.children.map(el => ({ id: el.id, cls: el.className, title: el.querySelector("h2").textContent,
    buttons: el.all().filter(c => c.tagName === "BUTTON").map(b => b.textContent),
    src: (el.querySelector("video") || {}).src || null, fig: el.querySelector(".figures").textContent }));
  console.log(JSON.stringify({ sessions: out, index: !!document.getElementById("index") }));
}, 10);
