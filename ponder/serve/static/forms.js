// Strategy parameter forms, generated from GET /v1/strategies.
// Each parameter comes as {name, type, default} where `type` is the Python
// annotation as text: "int", "float | None", "bool", "str",
// "Literal['none', 'prm']". A field only goes into the request when its value
// differs from the default, so the server's defaults stay the authority.

import { h } from "./dom.js";

/** What kind of input a Python type string needs: {kind, nullable, options}. */
export function fieldKind(type) {
  const parts = String(type).split("|").map((s) => s.trim());
  const nullable = parts.includes("None");
  const main = parts.find((p) => p !== "None") || "str";
  const literal = /^Literal\[(.*)\]$/.exec(main);
  if (literal) {
    const options = [...literal[1].matchAll(/'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? m[2]);
    return { kind: "choice", nullable, options };
  }
  if (main === "bool") return { kind: "bool", nullable, options: [] };
  if (main === "int" || main === "float") return { kind: main, nullable, options: [] };
  return { kind: "str", nullable, options: [] };
}

// Strings are edited with visible escapes, so a "\n" delimiter can be seen and typed.
const escape = (s) => JSON.stringify(s).slice(1, -1);
function unescape(s) {
  try {
    return JSON.parse(`"${s}"`);
  } catch {
    return s;
  }
}

/** One parameter's row: {element, read()} where read() is the value to send or undefined. */
export function paramField(param, prefix = "param") {
  const { kind, nullable, options } = fieldKind(param.type);
  const id = `${prefix}-${param.name}`;
  const def = param.default;
  let input;
  if (kind === "choice") {
    input = h("select", { id });
    if (nullable) input.append(h("option", { value: "" }, "(default)"));
    for (const option of options) input.append(h("option", { value: option }, option));
    input.value = def ?? "";
  } else if (kind === "bool") {
    input = h("input", { id, type: "checkbox" });
    input.checked = Boolean(def);
  } else if (kind === "int" || kind === "float") {
    input = h("input", { id, type: "number", step: kind === "int" ? "1" : "any", placeholder: nullable ? "off" : "" });
    input.value = def ?? "";
  } else {
    input = h("input", { id, type: "text", spellcheck: "false", placeholder: nullable ? "(default)" : "" });
    input.value = def == null ? "" : escape(def);
  }
  input.dataset.param = param.name;

  function read() {
    let value;
    if (kind === "bool") value = input.checked;
    else if (input.value === "") return undefined;  // blank: the server's default
    else if (kind === "int" || kind === "float") value = Number(input.value);
    else if (kind === "str") value = unescape(input.value);
    else value = input.value;
    return value === def ? undefined : value;
  }

  const label = h("label", { for: id, title: param.type }, param.name);
  const element = kind === "bool"
    ? h("div", { class: "param bool" }, input, label)
    : h("div", { class: "param" }, label, input);
  return { element, read, name: param.name };
}

/** Fill `fieldset` with the strategy's fields; returns a function giving the `strategy` object. */
export function strategyForm(fieldset, strategy) {
  fieldset.querySelectorAll(".param, .hint").forEach((el) => el.remove());
  const fields = (strategy?.parameters || []).map((p) => paramField(p));
  for (const f of fields) fieldset.append(f.element);
  if (!fields.length) fieldset.append(h("p", { class: "hint" }, "This strategy has no parameters."));
  return () => {
    const out = { name: strategy.name };
    for (const f of fields) {
      const value = f.read();
      if (value !== undefined) out[f.name] = value;
    }
    return out;
  };
}
