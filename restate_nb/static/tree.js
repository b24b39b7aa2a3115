// StateTree front end: renders the node records the kernel sends, asks for the rest, and
// turns clicks into edit requests. The protocol is documented in restate_nb/tree_protocol.py.
// First paint: the kernel publishes its snapshot in the synced trait `_snapshot`, so the view
// paints from the model at once (no round trip: while a cell runs the kernel answers no
// message, but its diffs and trait changes still arrive). Diffs are numbered; the view applies
// those above the number of the snapshot it shows, and "hello" makes it exact once the kernel
// is free.

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(cls, text, title, onClick) {
  const b = h("button", `rs-btn ${cls}`, text);
  b.type = "button";
  b.title = title;
  b.setAttribute("aria-label", title);
  b.addEventListener("click", (ev) => {
    ev.stopPropagation();
    onClick(ev);
  });
  return b;
}

function parentPath(path) {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function childPath(path, key) {
  return path === "/" ? `/${key}` : `${path}/${key}`;
}

function checkJson(text) {
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    return `invalid JSON: ${e.message}`;
  }
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const area = h("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

class TreeView {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.nodes = new Map(); // path -> {el, row, kids, rec, isRoot}
    this.marks = { derived: {}, feeds: {}, tracked: {} };
    this.handlers = new Map(); // req -> {ack, value, error, children}
    this.errors = new Map(); // path -> message, kept while the node is re-rendered
    this.seq = 0;
    this.ready = false;
    this.page = 200;
    this.started = performance.now();
    this.applied = -1; // number of the last diff the view shows
    this.synced = false; // a hello reply arrived
    this.stale = false; // a diff was missed (it went out before this view existed)
    el.classList.add("restate-tree");
    this.status = h("div", "rs-status", "loading state…");
    this.body = h("div", "rs-body");
    el.append(this.status, this.body);
    this.onMsg = (msg) => this.receive(msg);
    this.onSnapshot = () => this.published();
    model.on("msg:custom", this.onMsg);
    model.on("change:_snapshot", this.onSnapshot);
    this.published();
    this.helloReq = this.request({ type: "hello" });
  }

  dispose() {
    this.model.off("msg:custom", this.onMsg);
    this.model.off("change:_snapshot", this.onSnapshot);
  }

  published() {
    const snap = this.model.get("_snapshot");
    if (!snap || !snap.root) return;
    // a view in step with the kernel keeps its DOM (an open editor, flashes); one that has
    // not heard back from the kernel, or missed a diff, takes the newer picture
    const behind = !this.ready || ((!this.synced || this.stale) && snap.seq > this.applied);
    if (behind) this.snapshot(snap);
  }

  request(msg, handlers) {
    const req = `${Math.random().toString(36).slice(2)}-${++this.seq}`;
    if (handlers) this.handlers.set(req, handlers);
    this.model.send({ ...msg, req });
    return req;
  }

  receive(msg) {
    if (msg.type === "snapshot") {
      if (msg.req !== this.helloReq) return; // another view said hello
      this.synced = true;
      return this.snapshot(msg);
    }
    if (msg.type === "diff") return this.ready && this.diff(msg);
    const handler = this.handlers.get(msg.req);
    if (!handler) return; // a reply to another view of the same widget
    this.handlers.delete(msg.req);
    const fn = handler[msg.type];
    if (fn) fn(msg);
    else if (msg.type === "error") this.setStatus(msg.message, true);
  }

  setStatus(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("rs-status-error", isError);
  }

  // -- rendering ---------------------------------------------------------------------------

  snapshot(msg) {
    this.applied = msg.seq ?? this.applied;
    this.stale = false;
    this.page = msg.page || this.page;
    this.marks = msg.marks || this.marks;
    this.nodes.clear();
    this.body.replaceChildren(this.build(msg.root, true));
    this.ready = true;
    this.setStatus("");
    this.el.dataset.synced = String(this.synced);
    if (this.el.dataset.firstPaintMs) return;
    requestAnimationFrame(() => {
      this.el.dataset.firstPaintMs = (performance.now() - this.started).toFixed(1);
    });
  }

  build(rec, isRoot = false) {
    const el = h("div", "rs-node");
    el.dataset.path = rec.path;
    el.dataset.kind = rec.kind;
    const row = h("div", "rs-row");
    el.append(row);
    const entry = { el, row, kids: null, rec, isRoot };
    this.nodes.set(rec.path, entry);
    if (rec.kind === "dict" && rec.children) this.showChildren(entry, rec.children, 0);
    this.fillRow(entry);
    return el;
  }

  fillRow(entry) {
    const { rec, row } = entry;
    row.replaceChildren();
    if (rec.kind === "dict") {
      const open = !!entry.kids;
      const t = button("rs-toggle", open ? "▾" : "▸", open ? "collapse" : "expand", () =>
        this.toggle(entry),
      );
      t.setAttribute("aria-expanded", String(open));
      row.append(t);
    } else {
      row.append(h("span", "rs-spacer"));
    }
    row.append(h("span", "rs-key", entry.isRoot ? rec.path : rec.key));
    if (rec.kind === "dict") {
      const n = rec.count;
      const c = h("span", "rs-count", `{${n} ${n === 1 ? "key" : "keys"}}`);
      c.addEventListener("click", () => this.toggle(entry));
      row.append(c);
    } else if (rec.kind === "leaf") {
      const v = h("span", `rs-value rs-t-${rec.type}`, rec.json + (rec.truncated ? "…" : ""));
      if (!rec.exact) v.classList.add("rs-inexact");
      v.title = rec.exact ? "double-click to edit as JSON" : "not JSON: shown as repr()";
      v.addEventListener("dblclick", () => this.startEdit(entry));
      row.append(v);
    } else {
      row.append(h("span", "rs-missing", "no value"));
    }
    const error = h("span", "rs-error", this.errors.get(rec.path) || "");
    if (error.textContent) error.setAttribute("role", "alert");
    row.append(this.markBadges(rec.path), this.actions(entry), error);
  }

  markBadges(path) {
    const span = h("span", "rs-marks");
    const { derived, feeds, tracked } = this.marks;
    if (derived[path]) {
      const b = h("span", "rs-mark rs-derived", "ƒ derived");
      b.title = `derived from ${derived[path].join(", ")}`;
      span.append(b);
    }
    if (feeds[path]) {
      const b = h("span", "rs-mark rs-feeds", "→");
      b.title = `source of ${feeds[path].join(", ")}`;
      span.append(b);
    }
    if (tracked[path]) {
      const b = h("span", "rs-mark rs-tracked", "◉ tracked");
      b.title = `read by ${tracked[path].join(", ")}`;
      span.append(b);
    }
    return span;
  }

  actions(entry) {
    const { rec } = entry;
    const span = h("span", "rs-actions");
    if (rec.kind === "leaf") {
      span.append(button("rs-edit", "✎", "edit as JSON", () => this.startEdit(entry)));
    }
    if (rec.kind === "dict" || (entry.isRoot && rec.kind === "missing")) {
      span.append(button("rs-add", "+", "add a child key", () => this.startAdd(entry)));
    }
    span.append(button("rs-copy", "⧉", `copy path ${rec.path}`, () => this.copy(entry)));
    if (!entry.isRoot && rec.kind !== "missing") {
      span.append(button("rs-delete", "✕", "delete…", () => this.confirmDelete(entry)));
    }
    return span;
  }

  showChildren(entry, children, offset) {
    if (!entry.kids) {
      entry.kids = h("div", "rs-children");
      entry.el.append(entry.kids);
    }
    if (offset === 0) {
      this.forgetBelow(entry.kids);
      entry.kids.replaceChildren();
    }
    const more = entry.kids.querySelector(":scope > .rs-more");
    if (more) more.remove();
    const frag = document.createDocumentFragment();
    for (const child of children) frag.append(this.build(child));
    entry.kids.append(frag);
    this.updateMore(entry);
  }

  rendered(entry) {
    return entry.kids ? entry.kids.querySelectorAll(":scope > .rs-node").length : 0;
  }

  updateMore(entry) {
    if (!entry.kids) return;
    const old = entry.kids.querySelector(":scope > .rs-more");
    const missing = entry.rec.count - this.rendered(entry);
    if (old) old.remove();
    if (missing <= 0) return;
    const more = button("rs-more", `${missing} more…`, "load more keys", () => {
      more.disabled = true;
      this.request(
        { type: "expand", path: entry.rec.path, offset: this.rendered(entry) },
        {
          children: (m) => this.applyChildren(m),
          error: (m) => this.showError(entry, m.message),
        },
      );
    });
    entry.kids.append(more);
  }

  forgetBelow(container) {
    for (const n of container.querySelectorAll(".rs-node")) this.nodes.delete(n.dataset.path);
  }

  // -- updates from the kernel -----------------------------------------------------------

  diff(msg) {
    if (msg.seq !== undefined) {
      if (msg.seq <= this.applied) return; // the snapshot shown already holds it
      if (msg.seq > this.applied + 1) this.stale = true;
      this.applied = msg.seq;
    }
    if (msg.marks) {
      this.marks = msg.marks;
      for (const entry of this.nodes.values()) {
        entry.row.querySelector(".rs-marks")?.replaceWith(this.markBadges(entry.rec.path));
      }
    }
    for (const op of msg.ops) {
      if (op.op === "put") this.put(op.path, op.node);
      else if (op.op === "head") this.head(op.path, op.node);
      else if (op.op === "remove") this.remove(op.path);
    }
    for (const path of msg.flash) this.flash(path);
  }

  put(path, rec) {
    const old = this.nodes.get(path);
    const editor = old?.row.querySelector(".rs-input");
    if (editor && !editor.disabled && rec.kind === "leaf") {
      old.rec = rec; // the user is typing: keep the editor, show the new value when done
      return;
    }
    if (old) {
      this.forgetBelow(old.el);
      const fresh = this.build(rec, old.isRoot);
      old.el.replaceWith(fresh);
      return;
    }
    const parent = this.nodes.get(parentPath(path));
    // a key beyond the loaded page arrives with "more…"
    if (!parent || !parent.kids || this.rendered(parent) < parent.rec.count) return;
    const more = parent.kids.querySelector(":scope > .rs-more");
    parent.kids.insertBefore(this.build(rec), more);
  }

  head(path, rec) {
    const entry = this.nodes.get(path);
    if (!entry) return;
    entry.rec = { ...rec, children: undefined };
    this.fillRow(entry);
    this.updateMore(entry);
  }

  remove(path) {
    const entry = this.nodes.get(path);
    if (!entry) return;
    this.forgetBelow(entry.el);
    this.nodes.delete(path);
    entry.el.remove();
  }

  flash(path) {
    const entry = this.nodes.get(path);
    if (!entry) return;
    const row = entry.row;
    row.classList.remove("rs-flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("rs-flash");
    row.addEventListener("animationend", () => row.classList.remove("rs-flash"), { once: true });
  }

  applyChildren(msg) {
    const entry = this.nodes.get(msg.path);
    if (!entry) return;
    entry.rec.count = msg.count;
    this.showChildren(entry, msg.children, msg.offset);
    this.fillRow(entry);
  }

  // -- user actions ------------------------------------------------------------------------

  toggle(entry) {
    const path = entry.rec.path;
    if (entry.kids) {
      this.forgetBelow(entry.kids);
      entry.kids.remove();
      entry.kids = null;
      this.fillRow(entry);
      this.request({ type: "collapse", path });
      return;
    }
    entry.row.classList.add("rs-loading");
    this.request(
      { type: "expand", path, offset: 0 },
      {
        children: (m) => {
          entry.row.classList.remove("rs-loading");
          this.applyChildren(m);
        },
        error: (m) => {
          entry.row.classList.remove("rs-loading");
          this.showError(entry, m.message);
        },
      },
    );
  }

  showError(entry, text) {
    if (text) this.errors.set(entry.rec.path, text);
    else this.errors.delete(entry.rec.path);
    const span = entry.row.querySelector(".rs-error");
    span.textContent = text || "";
    span.setAttribute("role", text ? "alert" : "none");
  }

  startEdit(entry) {
    if (entry.row.querySelector(".rs-input")) return;
    this.showError(entry, null);
    const begin = (text) => {
      const input = h("input", "rs-input");
      input.value = text;
      input.spellcheck = false;
      input.setAttribute("aria-label", `JSON value of ${entry.rec.path}`);
      const save = button("rs-save", "✓", "save (Enter)", () => this.commitEdit(entry, input));
      const cancel = button("rs-cancel", "✗", "cancel (Escape)", () => this.cancelEdit(entry));
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") this.commitEdit(entry, input);
        else if (ev.key === "Escape") this.cancelEdit(entry);
        ev.stopPropagation(); // keep JupyterLab's shortcuts out of the editor
      });
      entry.row.querySelector(".rs-value").replaceWith(input, save, cancel);
      input.focus();
      input.select();
    };
    if (!entry.rec.truncated) return begin(entry.rec.json);
    this.request(
      { type: "read", path: entry.rec.path },
      { value: (m) => begin(m.json), error: (m) => this.showError(entry, m.message) },
    );
  }

  cancelEdit(entry) {
    this.errors.delete(entry.rec.path);
    this.fillRow(entry);
  }

  commitEdit(entry, input) {
    const problem = checkJson(input.value);
    input.classList.toggle("rs-invalid", !!problem);
    this.showError(entry, problem);
    if (problem) return; // invalid JSON never leaves the browser
    input.disabled = true;
    this.request(
      { type: "set", path: entry.rec.path, json: input.value },
      {
        // the new value arrives as a diff; an unchanged value ends the edit here
        ack: (m) => m.changed || this.fillRow(entry),
        error: (m) => {
          input.disabled = false;
          input.classList.add("rs-invalid");
          this.showError(entry, m.message);
          input.focus();
        },
      },
    );
  }

  startAdd(entry) {
    if (entry.el.querySelector(":scope > .rs-addform")) return;
    const form = h("div", "rs-addform");
    const key = h("input", "rs-input rs-newkey");
    key.placeholder = "key";
    key.setAttribute("aria-label", `new key in ${entry.rec.path}`);
    const value = h("input", "rs-input rs-newvalue");
    value.placeholder = "JSON value";
    value.value = "null";
    value.setAttribute("aria-label", "JSON value of the new key");
    const error = h("span", "rs-error");
    const submit = () => {
      const problem = !key.value ? "a key is required" : checkJson(value.value);
      error.textContent = problem || "";
      if (problem) return;
      this.request(
        { type: "add", path: entry.rec.path, key: key.value, json: value.value },
        { ack: () => form.remove(), error: (m) => (error.textContent = m.message) },
      );
    };
    for (const input of [key, value]) {
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") submit();
        else if (ev.key === "Escape") form.remove();
        ev.stopPropagation();
      });
    }
    const ok = button("rs-save", "add", "add this key", submit);
    const cancel = button("rs-cancel", "cancel", "cancel", () => form.remove());
    form.append(key, h("span", "rs-sep", ":"), value, ok, cancel, error);
    entry.row.after(form);
    key.focus();
  }

  confirmDelete(entry) {
    this.showError(entry, null);
    const actions = entry.row.querySelector(".rs-actions");
    const ask = h("span", "rs-confirm", `delete ${entry.rec.path}?`);
    const yes = button("rs-confirm-yes", "delete", "delete this node", () => {
      this.request(
        { type: "delete", path: entry.rec.path },
        { error: (m) => this.showError(entry, m.message) },
      );
      ask.replaceWith(actions);
    });
    const no = button("rs-confirm-no", "keep", "keep this node", () => ask.replaceWith(actions));
    ask.append(yes, no);
    actions.replaceWith(ask);
    no.focus();
  }

  async copy(entry) {
    const ok = await copyText(entry.rec.path);
    const b = entry.row.querySelector(".rs-copy");
    if (!b) return;
    b.classList.add(ok ? "rs-copied" : "rs-copy-failed");
    b.title = ok ? `copied ${entry.rec.path}` : "copy failed";
    setTimeout(() => b.classList.remove("rs-copied", "rs-copy-failed"), 1200);
  }
}

export default {
  render({ model, el }) {
    const view = new TreeView(model, el);
    return () => view.dispose();
  },
};
