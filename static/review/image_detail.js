// The read-only image page: the chosen annotation's boxes and masks over the image.

import { truncate } from "./dom.js";
import { MaskEditor } from "./editor/mask_editor.js";
import { ROLES } from "./review_model.js";
import { decodeRle } from "./rle.js";

const root = document.querySelector("[data-image-page]");
if (root) {
  const annotations = JSON.parse(document.getElementById("annotations-data").textContent);
  const editor = new MaskEditor(root.querySelector(".stage canvas"), {
    width: Number(root.dataset.width),
    height: Number(root.dataset.height),
    imageUrl: root.dataset.url,
    readOnly: true,
  });
  window.imageEditor = editor;

  const show = (id) => {
    const a = annotations.find((x) => String(x.id) === String(id));
    const elements = [];
    (a?.triplets || []).forEach((t, i) => {
      for (const role of ROLES) {
        const e = t[role];
        if (!e) continue;
        elements.push({
          id: `${i}:${role}`, role, label: truncate(e.phrase, 28),
          box: e.box || null, mask: e.mask ? decodeRle(e.mask).data : null, rejected: e.status === "rejected",
        });
      }
    });
    editor.setElements(elements);
    for (const card of root.querySelectorAll("[data-annotation]")) card.classList.toggle("shown", card.dataset.annotation === String(id));
  };

  for (const radio of root.querySelectorAll('input[name="shown"]')) radio.addEventListener("change", () => show(radio.value));
  root.querySelector("#overlays").addEventListener("change", (ev) => editor.setOverlaysVisible(ev.target.checked));
  root.querySelector("#opacity").addEventListener("input", (ev) => editor.setOpacity(Number(ev.target.value) / 100));
  root.querySelector(".stage canvas").addEventListener("overlayschange", (ev) => (root.querySelector("#overlays").checked = ev.detail));
  document.addEventListener("keydown", (ev) => {
    if (!["INPUT", "TEXTAREA", "SELECT"].includes(ev.target.tagName) && editor.handleKey(ev)) ev.preventDefault();
  });
  if (annotations.length) show(annotations[0].id);
}
