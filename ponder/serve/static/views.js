// Live views of a strategy's `ponder.progress` events, chosen by the event's
// `phase` (not by the strategy's name), so any strategy that reports a phase
// gets its view: `sampling` -> per-sample bars, `vote` -> the tally, `scored`
// -> candidate scores, `search` -> the MCTS tree, `thinking`/`answer` -> the
// thinking budget with its "Wait" insertions, `reflection` -> rounds.
// Unknown phases are shown as their raw JSON. `finish(result)` lets each view
// mark what the strategy chose from the final `ponder.result` account.

import { fmt, h, paintAnswer } from "./dom.js";
import { TreeView } from "./tree.js";

function bar(cls = "") {
  const fill = h("div", { class: "fill" });
  return { el: h("div", { class: `bar ${cls}` }, fill), fill };
}

const setWidth = (el, share) => { el.style.width = `${(100 * Math.max(0, Math.min(1, share))).toFixed(2)}%`; };

class SamplesView {
  constructor(opts) {
    this.scale = opts.maxTokens || 1;
    this.rows = new Map();
    this.head = h("h3", {}, "Samples");
    this.list = h("div", { class: "rows" });
    this.el = h("section", { class: "view samples" }, this.head, this.list);
  }

  row(index) {
    let row = this.rows.get(index);
    if (row) return row;
    const b = bar();
    row = { index, tokens: 0, done: false, answer: undefined, score: undefined, bar: b,
      tokensEl: h("span", { class: "tokens" }), answerEl: h("span", { class: "answer-chip" }) };
    row.el = h("div", { class: "sample-row", "data-index": index }, h("span", { class: "label" }, `#${index}`),
      b.el, row.tokensEl, row.answerEl);
    const after = [...this.rows.values()].find((r) => r.index > index);
    this.list.insertBefore(row.el, after ? after.el : null);
    this.rows.set(index, row);
    return row;
  }

  update(p) {
    for (const s of p.samples || []) {
      const row = this.row(s.index);
      row.tokens = s.tokens;
      row.done = s.done;
      if ("answer" in s) row.answer = s.answer;
    }
    this.render();
  }

  render() {
    const rows = [...this.rows.values()];
    this.scale = Math.max(this.scale, ...rows.map((r) => r.tokens));
    for (const r of rows) {
      setWidth(r.bar.fill, r.tokens / this.scale);
      r.el.classList.toggle("done", r.done);
      r.tokensEl.textContent = `${r.tokens} tok`;
      if (r.done && r.answer !== undefined) {
        r.answerEl.textContent = fmt.answer(r.answer) + (r.score === undefined ? "" : ` · ${fmt.num(r.score)}`);
        paintAnswer(r.el, r.answer);
      }
    }
    const done = rows.filter((r) => r.done).length;
    const tokens = rows.reduce((a, r) => a + r.tokens, 0);
    this.head.textContent = `Samples · ${done}/${rows.length} done · ${tokens} tokens`;
  }

  finish(result) {
    for (const s of result.samples || []) {
      const row = this.row(s.index);
      Object.assign(row, { tokens: s.tokens, done: true, answer: s.answer, score: s.score });
    }
    for (const r of this.rows.values()) r.el.classList.toggle("chosen", r.index === result.chosen);
    this.render();
  }
}

class VoteView {
  constructor() {
    this.head = h("h3", {}, "Vote");
    this.list = h("div", { class: "rows" });
    this.el = h("section", { class: "view votes" }, this.head, this.list);
  }

  render(votes, total, agreement, winner) {
    this.list.replaceChildren();
    const weighted = votes.some((v) => Math.abs(v.weight - v.votes) > 1e-9);
    const weightSum = votes.reduce((a, v) => a + v.weight, 0) || 1;
    for (const v of votes) {
      const b = bar();
      setWidth(b.fill, weighted ? v.weight / weightSum : v.votes / (total || 1));
      const row = h("div", { class: "vote-row", "data-answer": fmt.answer(v.answer) },
        h("span", { class: "answer-chip" }, fmt.answer(v.answer)), b.el,
        h("span", { class: "count" }, `${v.votes} vote${v.votes === 1 ? "" : "s"}` + (weighted ? ` · w ${fmt.num(v.weight)}` : "")));
      paintAnswer(row, v.answer);
      if (winner !== undefined && v.answer === winner) row.classList.add("winner");
      this.list.append(row);
    }
    this.head.textContent = `Vote · ${total} samples · agreement ${fmt.pct(agreement || 0)}`;
  }

  update(p) {
    this.last = p;
    this.render(p.votes || [], p.samples_done, p.agreement);
  }

  finish(result) {
    const votes = result.votes || this.last?.votes || [];
    const total = result.samples ? result.samples.length : this.last?.samples_done;
    this.render(votes, total, result.agreement ?? this.last?.agreement, result.answer);
    if (result.early_stop) this.head.textContent += " · stopped early";
  }
}

class ScoresView {
  constructor() {
    this.head = h("h3", {}, "Scores");
    this.list = h("div", { class: "rows" });
    this.el = h("section", { class: "view scores" }, this.head, this.list);
    this.scores = [];
  }

  render(chosen) {
    const values = this.scores.map((s) => s.score);
    const unit = values.every((v) => v >= 0 && v <= 1);
    const lo = unit ? 0 : Math.min(...values);
    const hi = unit ? 1 : Math.max(...values);
    this.list.replaceChildren();
    for (const s of [...this.scores].sort((a, b) => b.score - a.score || a.index - b.index)) {
      const b = bar();
      setWidth(b.fill, hi > lo ? 0.06 + 0.94 * ((s.score - lo) / (hi - lo)) : 1);  // the lowest still shows
      const row = h("div", { class: "score-row", "data-index": s.index }, h("span", { class: "label" }, `#${s.index}`),
        b.el, h("span", { class: "score" }, fmt.num(s.score)), h("span", { class: "answer-chip" }, fmt.answer(s.answer)));
      paintAnswer(row, s.answer);
      if (s.index === chosen) row.classList.add("chosen");
      this.list.append(row);
    }
  }

  update(p) {
    this.scores = p.scores || [];
    this.head.textContent = `Scores · ${p.scorer || "scorer"} · ${this.scores.length} candidates`;
    this.render();
  }

  finish(result) {
    this.render(result.chosen);
  }
}

class BudgetView {
  constructor(opts) {
    this.opts = opts;
    this.tokens = 0;
    this.min = 0;
    this.limit = null;
    this.waits = [];
    this.forced = false;
    this.answering = false;
    this.head = h("h3", {}, "Thinking");
    this.track = bar("budget-bar");
    this.minMark = h("div", { class: "mark min", title: "min_tokens" });
    this.track.el.append(this.minMark);
    this.marks = h("div", { class: "marks" });
    this.track.el.append(this.marks);
    this.events = h("div", { class: "chips" });
    this.el = h("section", { class: "view budget" }, this.head, this.track.el, this.events);
  }

  update(p) {
    if (p.min_tokens !== undefined) this.min = p.min_tokens;
    if (p.max_tokens !== undefined && p.max_tokens !== null) this.limit = p.max_tokens;
    if (p.thinking_tokens !== undefined) this.tokens = p.thinking_tokens;
    if (p.event === "wait") {
      this.waits.push(p.thinking_tokens);
      this.events.append(h("span", { class: "chip wait-marker" }, `Wait #${p.waits} at ${p.thinking_tokens} tokens`));
    } else if (p.event === "forced_end") {
      this.forced = true;
      this.events.append(h("span", { class: "chip forced" }, `thinking cut at ${p.thinking_tokens} tokens`));
    } else if (p.phase === "answer") {
      this.answering = true;
      this.events.append(h("span", { class: "chip answering" }, `answering after ${p.thinking_tokens} thinking tokens`));
    }
    this.render();
  }

  reasoning() {
    // Between progress events the count grows with the stream (one delta is about one token).
    if (!this.answering) { this.tokens += 1; this.render(); }
  }

  render() {
    const limit = this.limit || this.opts.maxTokens || Math.max(this.tokens, this.min) * 1.25 || 1;
    setWidth(this.track.fill, this.tokens / limit);
    this.minMark.hidden = !this.min;
    setWidth(this.minMark, this.min / limit);  // the mark sits at its right edge
    this.marks.replaceChildren(...this.waits.map((at, i) => {
      const m = h("div", { class: "mark wait", title: `Wait #${i + 1}` }, h("span", {}, "W"));
      setWidth(m, at / limit);
      return m;
    }));
    this.track.el.classList.toggle("forced", this.forced);
    const parts = [`Thinking · ${this.tokens} / ${this.limit || "max_tokens"} tokens`];
    if (this.min) parts.push(`min ${this.min}`);
    parts.push(`${this.waits.length} wait${this.waits.length === 1 ? "" : "s"}`);
    if (this.forced) parts.push("forced end");
    this.head.textContent = parts.join(" · ");
  }

  finish(result) {
    if (result.thinking_tokens !== undefined) this.tokens = result.thinking_tokens;
    this.answering = true;
    this.render();
  }
}

class ReflectionView {
  constructor() {
    this.chips = h("div", { class: "chips" });
    this.el = h("section", { class: "view reflection" }, h("h3", {}, "Reflection"), this.chips);
  }

  update(p) {
    this.chips.append(h("span", { class: "chip" }, `round ${p.round} of ${p.of}`));
  }

  finish() {}
}

class RawView {
  constructor() {
    this.line = h("pre", { class: "raw" });
    this.el = h("section", { class: "view raw" }, h("h3", {}, "Progress"), this.line);
  }

  update(p) {
    this.line.textContent = JSON.stringify(p);
  }

  finish() {}
}

const PHASES = {
  sampling: SamplesView,
  vote: VoteView,
  scored: ScoresView,
  search: TreeView,
  thinking: BudgetView,
  answer: BudgetView,
  reflection: ReflectionView,
};

/** All progress views of one response, created as their phases first appear. */
export class ProgressBoard {
  constructor(root, opts) {
    this.root = root;
    this.opts = opts;
    this.views = new Map();
  }

  progress(p) {
    const View = PHASES[p.phase] || RawView;
    let view = this.views.get(View);
    if (!view) {
      view = new View(this.opts);
      this.views.set(View, view);
      this.root.append(view.el);
      this.root.hidden = false;
    }
    view.update(p);
  }

  reasoning(text) {
    for (const view of this.views.values()) view.reasoning?.(text);
  }

  result(result) {
    for (const view of this.views.values()) view.finish(result);
  }
}
