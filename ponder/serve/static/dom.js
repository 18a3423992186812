// Tiny DOM helpers: h() builds HTML elements, svg() SVG ones; children may be
// strings, nodes, or null/false (skipped). Attributes are set as attributes
// (never inline styles: the page's CSP forbids them; use el.style from JS).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** A stable colour hue for an answer, so the same answer looks the same in every view. */
export function answerHue(answer) {
  if (answer === null || answer === undefined) return null;
  let hash = 0;
  for (const ch of String(answer)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return (hash * 137.508) % 360;
}

/** Tag `el` with an answer's colour (CSS reads --hue); no answer: neutral. */
export function paintAnswer(el, answer) {
  const hue = answerHue(answer);
  if (hue === null) el.style.removeProperty("--hue");
  else el.style.setProperty("--hue", hue.toFixed(0));
  el.classList.toggle("no-answer", hue === null);
  return el;
}

export const fmt = {
  ms: (ms) => (ms == null ? "–" : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`),
  pct: (x) => `${(100 * x).toFixed(0)}%`,
  num: (x, digits = 3) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(digits)),
  answer: (a) => (a === null || a === undefined ? "no answer" : String(a)),
};
