// A tiny DOM toolkit: elements from data (no HTML strings, so nothing a user
// wrote is ever parsed as markup), money and time formatting, notices.

import { t, lang } from "./i18n.js";

/** h("button", {class: "x", onclick}, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces what `el` holds. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function money(cents) {
  const n = Number(cents || 0);
  const sign = n < 0 ? "-" : "";
  const abs = Math.abs(n);
  return `${sign}¥${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** "12.34" -> 1234 (no floats: digits only), or null when it is not money. */
export function parseMoney(text) {
  const m = String(text).trim().match(/^(\d{1,9})(?:\.(\d{1,2}))?$/);
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0"));
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(lang(), { dateStyle: "short", timeStyle: "short" });
}

/** A short-lived notice, read out by screen readers. */
export function notice(text, kind = "info") {
  let box = document.getElementById("notices");
  if (!box) {
    box = h("div", { id: "notices", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const n = h("div", { class: `notice ${kind}` }, text);
  box.append(n);
  setTimeout(() => n.remove(), 5000);
}

/** The translated message of an ApiError (or any error). */
export function errorText(e) {
  if (e && e.code) return t(`error.${e.code}`, {}, e.detail || e.code);
  return String(e);
}

/**
 * A labelled form. fields: [{name, label, type?, required?, value?, options?, attrs?}].
 * onSubmit(values, form) may throw an ApiError: its text is shown in the form.
 */
export function form(id, fields, submitLabel, onSubmit) {
  const error = h("p", { class: "form-error", role: "alert" });
  const inputs = fields.map((f) => field(id, f));
  const button = h("button", { type: "submit" }, submitLabel);
  const el = h("form", { id, novalidate: true }, inputs, error, button);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const values = Object.fromEntries(new FormData(el).entries());
    button.disabled = true;
    try {
      await onSubmit(values, el);
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

function field(formId, f) {
  const id = `${formId}-${f.name}`;
  let input;
  if (f.options) {
    input = h("select", { id, name: f.name }, f.options.map(([v, label]) => h("option", { value: v, selected: v === f.value }, label)));
  } else if (f.type === "textarea") {
    input = h("textarea", { id, name: f.name, required: f.required, ...(f.attrs || {}) });
    input.value = f.value || "";
  } else {
    input = h("input", { id, name: f.name, type: f.type || "text", required: f.required, value: f.value, ...(f.attrs || {}) });
  }
  return h("div", { class: "field" }, h("label", { for: id }, f.label), input);
}

/** A list with a "more" button that follows `next_cursor`. */
export function pagedList(load, renderItem, emptyText) {
  const list = h("ul", { class: "list" });
  const more = h("button", { class: "more", type: "button" }, t("common.more"));
  const box = h("div", {}, list, more);
  let cursor = null;
  async function next() {
    more.disabled = true;
    try {
      const page = await load(cursor);
      for (const item of page.items) list.append(renderItem(item));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!list.children.length) list.append(h("li", { class: "empty" }, emptyText || t("common.empty")));
    } catch (e) {
      list.append(h("li", { class: "form-error" }, errorText(e)));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", next);
  next();
  return box;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, t(`status.${status}`, {}, status));
}
