// One exchange of the chat: the user's message, then the reply streamed from
// /v1/chat/completions exactly as an OpenAI client reads it.
//
// Stream contract (see ponder/serve/chunks.py): `data:` chunks whose
// choices[0].delta holds `reasoning_content` (thinking) or `content` (the
// answer); `event: ponder.progress` / `event: ponder.result` with the
// strategy's `ponder` object; a final chunk with `usage`; errors as
// `data: {"error": ...}`; then `data: [DONE]`.
// The turn element's data-state goes streaming -> done | error | stopped.

import { describeError, errorOf } from "./api.js";
import { fmt, h } from "./dom.js";
import { readEvents } from "./sse.js";
import { ProgressBoard } from "./views.js";

export class Turn {
  constructor(transcript, body, userText) {
    this.body = body;
    this.controller = new AbortController();
    this.answer = "";
    this.error = null;
    this.usage = null;
    this.finishReason = null;
    this.waitWord = body.strategy?.wait || "Wait";
    this.reasoningText = h("div", { class: "reasoning-text" });
    this.reasoningCount = h("span", { class: "count" });
    this.reasoning = h("details", { class: "reasoning", open: true, hidden: true },
      h("summary", {}, "Reasoning ", this.reasoningCount), this.reasoningText);
    this.progress = h("div", { class: "progress", hidden: true });
    this.answerEl = h("div", { class: "answer" });
    this.errorEl = h("div", { class: "error", role: "alert", hidden: true });
    this.stats = h("dl", { class: "stats" });
    this.status = h("span", { class: "status" }, "waiting…");
    this.account = h("details", { class: "account", hidden: true });
    const strategy = body.strategy?.name || "direct";
    this.el = h("article", { class: "turn", "data-state": "streaming", "data-strategy": strategy },
      h("div", { class: "user" }, userText),
      h("div", { class: "assistant" },
        h("div", { class: "meta" }, h("span", { class: "model" }, body.model), h("span", { class: "strategy" }, strategy), this.status),
        this.reasoning, this.progress, this.answerEl, this.errorEl, this.stats, this.account,
        h("details", { class: "request" }, h("summary", {}, "Request"), h("pre", {}, JSON.stringify(body, null, 2)))));
    this.board = new ProgressBoard(this.progress, { maxTokens: body.max_tokens });
    this.reasoningDeltas = 0;
    transcript.append(this.el);
    this.scroll();
  }

  stop() {
    this.controller.abort();
  }

  /** Stream the reply; resolves to the answer, or null when it failed or was stopped. */
  async run(headers) {
    this.start = performance.now();
    this.setStatus("waiting for the first token…");
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body: JSON.stringify(this.body),
        signal: this.controller.signal,
      });
      if (!response.ok) return this.fail(await errorOf(response));
      for await (const message of readEvents(response.body)) {
        if (message.data === "[DONE]") break;
        this.handle(message.event, JSON.parse(message.data));
      }
    } catch (e) {
      if (this.controller.signal.aborted) return this.end("stopped", null);
      return this.fail({ message: `${e.name === "SyntaxError" ? "unreadable stream" : "network error"}: ${e.message}` });
    }
    if (this.error) return null;
    return this.end("done", this.answer);
  }

  handle(event, data) {
    if (data.error) {
      this.fail({ message: data.error.message, code: data.error.code || data.error.type });
      return;
    }
    if (data.ponder) {
      this.ponder(event, data.ponder);
      return;
    }
    if (data.usage) this.usage = data.usage;
    for (const choice of data.choices || []) {
      if (choice.index !== 0) continue;
      const delta = choice.delta || {};
      const thought = delta.reasoning_content ?? delta.reasoning;  // both carry the same text
      if (thought) this.addReasoning(thought);
      if (delta.content) this.addContent(delta.content);
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
  }

  ponder(event, p) {
    if (p.type === "result" || event === "ponder.result") {
      this.board.result(p);
      this.account.replaceChildren(h("summary", {}, `Strategy account · ${p.strategy}`), h("pre", {}, JSON.stringify(p, null, 2)));
      this.account.hidden = false;
    } else {
      this.board.progress(p);
      if (p.event === "wait") this.markWait();
    }
    this.scroll();
  }

  firstToken() {
    if (this.ttft === undefined) {
      this.ttft = performance.now() - this.start;
      this.setStatus("streaming…");
    }
  }

  addReasoning(text) {
    this.firstToken();
    this.reasoning.hidden = false;
    const box = this.reasoningText;
    const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 40;  // the reader is at the bottom
    const last = box.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE) last.appendData(text);
    else box.append(text);
    if (pinned) box.scrollTop = box.scrollHeight;
    this.reasoningDeltas += 1;  // a delta is about one token
    this.reasoningCount.textContent = `· ~${this.reasoningDeltas} tokens`;
    this.board.reasoning(text);
  }

  /** The strategy just appended its "Wait" to the thinking: mark it in the text. */
  markWait() {
    const last = this.reasoningText.lastChild;
    if (!last || last.nodeType !== Node.TEXT_NODE || !last.data.endsWith(this.waitWord)) return;
    last.data = last.data.slice(0, -this.waitWord.length);
    this.reasoningText.append(h("mark", { class: "wait-word" }, this.waitWord), document.createTextNode(""));
  }

  addContent(text) {
    this.firstToken();
    this.answer += text;
    this.answerEl.textContent = this.answer;
    this.scroll();
  }

  fail(error) {
    this.error = error;
    this.errorEl.textContent = describeError(error);
    this.errorEl.hidden = false;
    return this.end("error", null);
  }

  end(state, result) {
    this.total = performance.now() - this.start;
    this.el.dataset.state = state;
    this.setStatus(state === "done" ? `done${this.finishReason ? ` (${this.finishReason})` : ""}` : state);
    if (state === "done" && !this.answer) this.answerEl.textContent = "(empty answer)";
    this.showStats();
    this.scroll();
    return result;
  }

  showStats() {
    const u = this.usage;
    const items = [["TTFT", fmt.ms(this.ttft)], ["total", fmt.ms(this.total)]];
    if (u) {
      items.push(["prompt", u.prompt_tokens], ["completion", u.completion_tokens],
        ["reasoning", u.completion_tokens_details?.reasoning_tokens ?? 0],
        ["cached", u.prompt_tokens_details?.cached_tokens ?? 0]);
      if (this.total > 0) items.push(["tokens/s", (u.completion_tokens / (this.total / 1000)).toFixed(1)]);
    }
    this.stats.replaceChildren(...items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-stat": k }, String(v))]));
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  scroll() {
    const box = this.el.parentElement;
    if (box) box.scrollTop = box.scrollHeight;
  }
}
