// Building DOM without innerHTML: every string becomes a text node. Shared by the
// review page's panels and the adjudication page.

/** h("div", {class: "x", onclick: fn, dataset: {a: 1}}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") for (const [sk, sv] of Object.entries(v)) el.style.setProperty(sk.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), sv);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  const add = (c) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  };
  children.forEach(add);
  return el;
}

/** A button that does not take the focus on click, so the page's shortcuts keep working. */
export function button(label, onClick, attrs = {}) {
  return h("button", { type: "button", onmousedown: (ev) => ev.preventDefault(), onclick: onClick, ...attrs }, label);
}

/** `text` cut to `n` characters, the last one an ellipsis when it was longer. */
export function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
