// a minimal DOM for running the watch page's script in node
class El {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.children = []; this.dataset = {}; this.attrs = {};
    this.className = ""; this.textContent = ""; this.parent = null;
    this.classList = { toggle: (c, on) => { const s = new Set(this.className.split(" ").filter(Boolean));
      on ? s.add(c) : s.delete(c); this.className = [...s].join(" "); } }; }
  get firstChild() { return this.children[0] || null; }
  set innerHTML(v) { this.children = []; this.textContent = ""; }
  append(...xs) { for (const x of xs) { if (typeof x === "string") { this.textContent += x; continue; }
    x.parent = this; this.children.push(x); } }
  prepend(x) { x.parent = this; this.children.unshift(x); }
  remove() { if (this.parent) this.parent.children = this.parent.children.filter(c => c !== this); }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  canPlayType() { return ""; }
  click() { this.onclick && this.onclick(); }
  all() { return this.children.flatMap(c => [c, ...c.all()]); }
  querySelector(q) { return this.all().find(c => q.startsWith(".") ? c.className.split(" ").includes(q.slice(1))
    : c.tagName === q.toUpperCase()) || null; }
}
const root = new El("body");
const box = new El("div"); box.id = "sessions"; root.append(box);
const index = new El("ul"); index.id = "index"; root.append(index);
global.document = { createElement: t => new El(t),
  getElementById: id => root.all().find(c => c.id === id) || null };
global.window = {};
global.setInterval = () => 0;
global.__root = root;
