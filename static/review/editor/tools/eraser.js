// The eraser (X): the brush with erasing on.

import { BrushTool } from "./brush.js";

export class EraserTool extends BrushTool {
  constructor(editor) {
    super(editor, { name: "eraser", erase: true });
  }
}
