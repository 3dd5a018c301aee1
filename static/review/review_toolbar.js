// The review page's toolbar: the editor's tools, brush size, overlays and opacity,
// fit, undo and redo. Its buttons drive the current editor and the page's history;
// it shows the editor's state (its toolchange, brushchange and overlayschange events).

export class Toolbar {
  /** `root`: the page; `editor()`: the current MaskEditor or null; `history`: the page's History. */
  constructor(root, { editor, history }) {
    this.root = root;
    this.$ = (sel) => root.querySelector(sel);
    this.history = history;
    for (const b of root.querySelectorAll("[data-tool]")) b.addEventListener("click", () => editor()?.setTool(b.dataset.tool));
    const on = (sel, type, fn) => this.$(sel).addEventListener(type, fn);
    on("#brush-smaller", "click", () => editor()?.setBrushSize(editor().brushSize * 0.8));
    on("#brush-bigger", "click", () => editor()?.setBrushSize(editor().brushSize * 1.25));
    on("#overlays", "change", (ev) => editor()?.setOverlaysVisible(ev.target.checked));
    on("#opacity", "input", (ev) => editor()?.setOpacity(Number(ev.target.value) / 100));
    on("#undo", "click", () => history.undo());
    on("#redo", "click", () => history.redo());
    on("#fit", "click", () => editor()?.fit());
  }

  /** A new editor: follow its events and give it the toolbar's overlay settings. */
  attach(editor) {
    const canvas = editor.canvas;
    canvas.addEventListener("toolchange", (ev) => this.renderTool(ev.detail, editor.brushSize));
    canvas.addEventListener("brushchange", (ev) => this.renderBrushSize(ev.detail));
    canvas.addEventListener("overlayschange", (ev) => (this.$("#overlays").checked = ev.detail));
    const refine = this.$('[data-tool="refine"]'); // off when the server has no segmenter
    refine.disabled = !editor.refine;
    refine.title = editor.refine ? refine.dataset.onTitle : refine.dataset.offTitle;
    editor.setOpacity(Number(this.$("#opacity").value) / 100);
    editor.setOverlaysVisible(this.$("#overlays").checked);
  }

  renderTool(tool, brushSize) {
    for (const b of this.root.querySelectorAll("[data-tool]")) b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    this.renderBrushSize(brushSize);
  }

  renderBrushSize(px) {
    this.$("#brush-size").textContent = `${px}px`;
  }

  /** Undo and redo are enabled when there is something to undo or redo. */
  renderHistory() {
    this.$("#undo").disabled = !this.history.done.length;
    this.$("#redo").disabled = !this.history.undone.length;
  }
}
