// The review API over fetch (docs/review-api.md), for the review and adjudication
// pages: every request sends JSON with the CSRF token and answers {status, ok,
// statusText, data} (data is null when the body is not JSON); only refine turns
// the answer into a mask or an error.

import { RefineUnavailable } from "./editor/tools/refine.js";
import { decodeRle } from "./rle.js";

export const REVIEW_API = "/api/review/";

/** The CSRF token the base template gives htmx (the body's hx-headers), or "". */
export function csrfFromPage() {
  try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch { return ""; }
}

/** One request with a JSON body (when `body` is given) and a JSON answer. */
export async function requestJson(url, { method = "GET", body, csrf = "", keepalive = false } = {}) {
  const res = await fetch(url, {
    method,
    credentials: "same-origin",
    keepalive,
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { status: res.status, ok: res.ok, statusText: res.statusText, data };
}

/** The reviewer's endpoints under /api/review/. */
export class ReviewApi {
  constructor({ csrf, base = REVIEW_API }) {
    this.csrf = csrf;
    this.base = base;
  }

  request(method, path, body, { keepalive = false } = {}) {
    return requestJson(this.base + path, { method, body, csrf: this.csrf, keepalive });
  }

  /** A lease on the next item of a dataset (200), or 404 when none is left. */
  next(dataset) {
    return this.request("POST", "next/", { dataset });
  }

  /** Save the draft of a lease (which also renews the lease). */
  saveDraft(leaseId, payload, { keepalive = false } = {}) {
    return this.request("PUT", `leases/${leaseId}/draft/`, { payload }, { keepalive });
  }

  submit(leaseId, body) {
    return this.request("POST", `leases/${leaseId}/submit/`, body);
  }

  skip(leaseId) {
    return this.request("POST", `leases/${leaseId}/skip/`);
  }

  release(leaseId) {
    return this.request("POST", `leases/${leaseId}/release/`);
  }

  progress(dataset) {
    return this.request("GET", `progress/?dataset=${encodeURIComponent(dataset)}`);
  }

  /**
   * Click-to-refine: {mask: Uint8Array|null, score}. Throws RefineUnavailable when no
   * model can run (HTTP 502/503/504), Error on any other failure.
   */
  async refine(imageId, { box, points, labels }) {
    const { status, data } = await this.request("POST", "refine/", { image_id: imageId, box, points, labels });
    if (status === 200) return { mask: data.mask ? decodeRle(data.mask).data : null, score: data.score };
    if ([502, 503, 504].includes(status)) throw new RefineUnavailable(data?.detail || `Click-to-refine is not available (HTTP ${status}).`);
    throw new Error(data?.detail || `HTTP ${status}`);
  }
}
