// The MCTS search tree, drawn as SVG while it grows.
// Each `search` progress event carries the nodes it created (`new`) and the
// nodes whose statistics back-propagation changed (`updated`, the root
// included); a node is {id, parent, depth, step, visits, value, terminal,
// answer}. Layout: leaves take consecutive columns in depth-first order, a
// parent sits over the middle of its children, rows are depths. Circles show
// visit counts, their colour the mean value (red 0 -> green 1); terminal
// nodes are squares labelled with their answer. At the end the chosen path
// (`chosen_path` in the result) is highlighted.

import { fmt, h, svg } from "./dom.js";

const DX = 46;  // column width
const DY = 66;  // row height
const R = 14;   // node radius
const PAD = 26;

const valueColour = (v) => `hsl(${(120 * Math.max(0, Math.min(1, v))).toFixed(0)}, 62%, 42%)`;

export class TreeView {
  constructor() {
    this.nodes = new Map();
    this.chosen = new Set();
    this.head = h("h3", {}, "Search tree");
    this.canvas = svg("svg", { class: "tree", role: "img", "aria-label": "MCTS search tree" });
    this.el = h("section", { class: "view search" }, this.head, h("div", { class: "tree-scroll" }, this.canvas));
  }

  update(p) {
    for (const n of [...(p.updated || []), ...(p.new || [])]) this.nodes.set(n.id, { ...this.nodes.get(n.id), ...n });
    this.head.textContent = `Search tree · iteration ${p.iteration}/${p.iterations} · ${p.nodes} nodes`;
    this.render();
  }

  finish(result) {
    const path = result.chosen_path || [];
    path.forEach((id, i) => {
      // A path search left unfinished is completed by one last generation that no progress event showed.
      if (i > 0 && !this.nodes.has(id)) {
        this.nodes.set(id, { id, parent: path[i - 1], depth: i, step: "(completion after the search)", visits: 0,
          value: 0, terminal: true, answer: result.answer });
      }
    });
    this.chosen = new Set(path);
    const parts = [`Search tree · ${result.iterations ?? "?"} iterations · ${result.tree_size ?? this.nodes.size} nodes`];
    if (result.terminals !== undefined) parts.push(`${result.terminals} terminal`);
    if (result.answer !== undefined) parts.push(`answer ${fmt.answer(result.answer)}`);
    this.head.textContent = parts.join(" · ");
    this.render();
  }

  layout() {
    const children = new Map();
    const roots = [];
    for (const n of [...this.nodes.values()].sort((a, b) => a.id - b.id)) {
      if (n.parent !== null && this.nodes.has(n.parent)) {
        if (!children.has(n.parent)) children.set(n.parent, []);
        children.get(n.parent).push(n);
      } else {
        roots.push(n);
      }
    }
    const pos = new Map();
    let column = 0;
    const place = (n, depth) => {
      const kids = children.get(n.id) || [];
      let x;
      if (!kids.length) x = column++;
      else {
        const xs = kids.map((k) => place(k, depth + 1));
        x = (xs[0] + xs[xs.length - 1]) / 2;
      }
      pos.set(n.id, { x: PAD + R + x * DX, y: PAD + R + depth * DY });
      return x;
    };
    for (const root of roots) place(root, 0);
    return { pos, children, columns: Math.max(column, 1) };
  }

  render() {
    const { pos, columns } = this.layout();
    const depth = Math.max(0, ...[...pos.values()].map((p) => (p.y - PAD - R) / DY));
    const width = 2 * (PAD + R) + (columns - 1) * DX;
    const height = 2 * (PAD + R) + depth * DY + 14;
    this.canvas.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.canvas.setAttribute("width", width);
    this.canvas.setAttribute("height", height);
    const edges = svg("g", { class: "edges" });
    const nodes = svg("g", { class: "nodes" });
    for (const n of this.nodes.values()) {
      const p = pos.get(n.id);
      const parent = n.parent !== null ? pos.get(n.parent) : undefined;
      const onPath = this.chosen.has(n.id);
      if (parent) {
        const mid = (parent.y + p.y) / 2;
        edges.append(svg("path", {
          class: `edge${onPath && this.chosen.has(n.parent) ? " chosen" : ""}`,
          d: `M${parent.x},${parent.y + R} C${parent.x},${mid} ${p.x},${mid} ${p.x},${p.y - R}`,
        }));
      }
      nodes.append(this.drawNode(n, p, onPath));
    }
    this.canvas.replaceChildren(edges, nodes);
  }

  drawNode(n, p, onPath) {
    const cls = ["node", n.terminal ? "terminal" : "", onPath ? "chosen" : "", n.visits ? "" : "unvisited"].join(" ").trim();
    const shape = n.terminal
      ? svg("rect", { x: p.x - R, y: p.y - R, width: 2 * R, height: 2 * R, rx: 4 })
      : svg("circle", { cx: p.x, cy: p.y, r: R });
    shape.setAttribute("fill", n.visits ? valueColour(n.value) : "#c9ced6");
    const title = `#${n.id} · depth ${n.depth} · ${n.visits} visits · value ${fmt.num(n.value)}`
      + (n.terminal ? ` · answer ${fmt.answer(n.answer)}` : "") + `\n${n.step || ""}`;
    const g = svg("g", { class: cls, "data-id": n.id, "data-visits": n.visits, "data-value": n.value },
      svg("title", {}, title), shape,
      svg("text", { class: "visits", x: p.x, y: p.y + 4 }, n.visits),
      svg("text", { class: "value", x: p.x, y: p.y + R + 11 }, n.terminal ? fmt.answer(n.answer) : fmt.num(n.value, 2)));
    return g;
  }
}
