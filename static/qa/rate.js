// The rating page's keys: digits set the focused slider (two digits typed quickly make one
// number, e.g. 1 then 0 for 10, when it lies on the scale), Tab moves to the next scale (the
// browser's own order), Enter submits. On the result page Enter follows "Next image".

const DIGIT_WINDOW_MS = 800;

/** The typed digits a key press leaves: `key` appended to `typed` when it came within the
 * window and the number stays on the scale, else `key` alone. */
export function joinDigits(typed, key, { max }, withinWindow) {
  const joined = withinWindow ? typed + key : key;
  return Number(joined) <= max ? joined : key;
}

/** The value typed digits give on a slider: `typed` (a string of digits) read as a number,
 * snapped to the step from `min` and clamped to [min, max]. */
export function valueFromDigits(typed, { min, max, step }) {
  const raw = Number(typed);
  const snapped = min + Math.round((raw - min) / step) * step;
  return Math.min(max, Math.max(min, Number(snapped.toFixed(6))));
}

const page = typeof document === "undefined" ? null : document; // null under node's unit tests
const form = page?.querySelector("[data-rate-form]");
if (form) {
  let typed = "";
  let typedAt = 0;
  let typedOn = null;
  const show = (input) => { form.querySelector(`output[for="${input.id}"]`).textContent = input.value; };
  for (const input of form.querySelectorAll('input[type="range"]')) input.addEventListener("input", () => show(input));
  // The first slider (or the one the server's error names) takes the keys from the start.
  (form.querySelector('input[type="range"][aria-invalid="true"]') || form.querySelector('input[type="range"]'))?.focus();
  form.addEventListener("keydown", (ev) => {
    const input = ev.target;
    if (ev.key === "Enter") { ev.preventDefault(); form.requestSubmit(); return; }
    if (input.type !== "range" || !/^[0-9]$/.test(ev.key) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    ev.preventDefault();
    const scale = { min: Number(input.min), max: Number(input.max), step: Number(input.step) || 1 };
    const now = performance.now();
    typed = joinDigits(typed, ev.key, scale, typedOn === input && now - typedAt < DIGIT_WINDOW_MS);
    typedAt = now;
    typedOn = input;
    input.value = String(valueFromDigits(typed, scale));
    show(input);
  });
}

const next = page?.getElementById("rate-next");
if (next) {
  next.focus();
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && document.activeElement !== next) { ev.preventDefault(); next.click(); }
  });
}
