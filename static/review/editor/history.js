// Undo and redo for the review page and its editor: a stack of commands
// {label, undo(), redo()}. No DOM here: tested under node (tests/review/js/).

/** Undo/redo of commands {label, undo(), redo()}; the command has already been applied when pushed. */
export class History {
  constructor({ limit = 200, onChange = null } = {}) {
    this.limit = limit;
    this.done = [];
    this.undone = [];
    this.onChange = onChange;
  }

  push(command) {
    this.done.push(command);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
    this.onChange?.("push", command);
  }

  undo() {
    const command = this.done.pop();
    if (!command) return null;
    command.undo();
    this.undone.push(command);
    this.onChange?.("undo", command);
    return command;
  }

  redo() {
    const command = this.undone.pop();
    if (!command) return null;
    command.redo();
    this.done.push(command);
    this.onChange?.("redo", command);
    return command;
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}
