// Starts the adjudication page with what its template put there: the item and the
// dataset's taxonomy as JSON blocks, the API and next-item URLs as data attributes of #adj-final,
// the editor's canvas, the critic and annotator panels' and the legend's places.
import { mountAdjudication } from "./adjudication.js";
import { EMOTIONS, readTaxonomy } from "./review_model.js";

readTaxonomy(document);

const root = document.getElementById("adj-final");
mountAdjudication({
  data: JSON.parse(document.getElementById("adjudication-data").textContent),
  emotions: EMOTIONS,
  root,
  canvas: document.getElementById("adj-editor"),
  panels: document.getElementById("adj-panels"),
  legendRoot: document.getElementById("adj-legend"),
  apiUrl: root.dataset.apiUrl,
  nextUrl: root.dataset.nextUrl,
});
