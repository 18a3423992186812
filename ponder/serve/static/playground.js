// The playground page: settings from /v1/models and /v1/strategies, the API
// key kept in this browser, and a chat whose replies stream from
// /v1/chat/completions like any OpenAI client's (see turn.js).
//
// The key lives in sessionStorage (this tab) or, when "remember" is ticked,
// localStorage (this device). It only ever leaves the browser as the
// Authorization header of same-origin requests; the page's CSP
// (connect-src 'self') forbids any other destination.

import { describeError, errorOf } from "./api.js";
import { h } from "./dom.js";
import { strategyForm } from "./forms.js";
import { Turn } from "./turn.js";

const KEY_ITEM = "ponder.apiKey";
const $ = (id) => document.getElementById(id);

const state = {
  models: [],
  strategies: new Map(),
  readStrategy: () => ({ name: "direct" }),
  formFor: null,  // the strategy whose parameter form is shown
  history: [],
  running: null,  // the Turn streaming now
};

// --- the API key -----------------------------------------------------------

function storedKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? localStorage.getItem(KEY_ITEM) ?? "";
}

function storeKey(key, remember) {
  sessionStorage.removeItem(KEY_ITEM);
  localStorage.removeItem(KEY_ITEM);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_ITEM, key);
}

export function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// --- models and strategies ------------------------------------------------------

async function getJSON(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

function setConnection(text, ok) {
  const el = $("connection");
  el.textContent = text;
  el.classList.toggle("error", !ok);
  el.classList.toggle("ok", ok);
}

async function loadServer() {
  setConnection("loading models…", true);
  try {
    const [models, strategies] = await Promise.all([getJSON("/v1/models"), getJSON("/v1/strategies")]);
    state.models = models.data;
    state.strategies = new Map(strategies.data.map((s) => [s.name, s]));
    fillModels();
    fillStrategies();
    const bases = state.models.filter((m) => !m.parent).length;
    setConnection(`connected · ${bases} model${bases === 1 ? "" : "s"} · ${state.strategies.size} strategies`, true);
  } catch (e) {
    // Keep what was loaded before: a wrong key must not empty the menus.
    setConnection(`cannot load models: ${describeError(e)}`, false);
  }
}

function fillModels() {
  const select = $("model");
  const previous = select.value;
  const bases = h("optgroup", { label: "models" });
  const aliases = h("optgroup", { label: "strategy aliases" });
  for (const m of state.models) (m.parent ? aliases : bases).append(h("option", { value: m.id }, m.id));
  select.replaceChildren(bases, aliases);
  if (state.models.some((m) => m.id === previous)) select.value = previous;
}

function fillStrategies() {
  const select = $("strategy");
  const previous = select.value || "direct";
  const names = [...state.strategies.keys()].sort((a, b) => (a === "direct" ? -1 : b === "direct" ? 1 : a.localeCompare(b)));
  select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  select.value = state.strategies.has(previous) ? previous : names[0];
  if (select.value !== state.formFor) onStrategy();  // a key change keeps the parameters typed so far
}

function onStrategy() {
  const spec = state.strategies.get($("strategy").value);
  state.formFor = spec?.name;
  $("strategy-description").textContent = spec?.description || "";
  state.readStrategy = spec ? strategyForm($("params"), spec) : () => ({ name: "direct" });
  $("thinking").hidden = spec?.name !== "long_cot";
}

function onModel() {
  // An alias such as ponder-tiny@mcts picks its strategy (the request's `strategy` object wins on the server).
  const model = state.models.find((m) => m.id === $("model").value);
  if (model?.strategy && state.strategies.has(model.strategy)) {
    $("strategy").value = model.strategy;
    onStrategy();
  }
}

// --- the request ----------------------------------------------------------------------

const numberOf = (id) => ($(id).value === "" ? undefined : Number($(id).value));

export function buildRequest(messages) {
  const body = {
    model: $("model").value,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    strategy: state.readStrategy(),
  };
  const extras = { max_tokens: numberOf("max-tokens"), temperature: numberOf("temperature"), seed: numberOf("seed") };
  for (const [k, v] of Object.entries(extras)) if (v !== undefined) body[k] = v;
  if (numberOf("budget") !== undefined) body.strategy.budget = numberOf("budget");
  if (body.strategy.name === "long_cot") {
    if ($("reasoning-effort").value) body.reasoning_effort = $("reasoning-effort").value;
    const thinking = { min_tokens: numberOf("think-min"), max_tokens: numberOf("think-max"), max_waits: numberOf("think-waits") };
    const set = Object.fromEntries(Object.entries(thinking).filter(([, v]) => v !== undefined));
    if (Object.keys(set).length) body.thinking = set;
  }
  return body;
}

async function send() {
  const text = $("prompt").value.trim();
  if (!text || state.running) return;
  if (!$("model").value) {
    setConnection("no model to talk to: check the API key", false);
    return;
  }
  $("transcript").querySelector(".empty")?.remove();
  const messages = [...state.history, { role: "user", content: text }];
  const body = buildRequest(messages);
  const turn = new Turn($("transcript"), body, text);
  state.running = turn;
  $("prompt").value = "";
  setBusy(true);
  try {
    const answer = await turn.run(authHeaders());
    if (answer !== null) state.history = [...messages, { role: "assistant", content: answer }];
  } finally {
    state.running = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

// --- wiring --------------------------------------------------------------------------

function init() {
  const key = storedKey();
  $("api-key").value = key;
  $("remember-key").checked = Boolean(localStorage.getItem(KEY_ITEM));
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    storeKey($("api-key").value.trim(), $("remember-key").checked);
    loadServer();
  });
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = "";
    storeKey("", false);
    loadServer();
  });
  $("strategy").addEventListener("change", onStrategy);
  $("model").addEventListener("change", onModel);
  $("composer").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); send(); }
  });
  $("stop").addEventListener("click", () => state.running?.stop());
  $("clear").addEventListener("click", () => {
    state.running?.stop();
    state.history = [];
    $("transcript").replaceChildren(h("p", { class: "empty" }, "New chat."));
  });
  loadServer();
}

init();
