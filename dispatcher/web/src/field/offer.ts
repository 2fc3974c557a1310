// The offer screen: what, where (a small sketch), distance, ETA, the
// countdown; accept, or decline with a reason.

import { type Offer } from "../gen/pingji/v1/pingji_pb.js";
import { say, words } from "./i18n.js";
import { act } from "./actions.js";
import { bearingDeg, compassWord, metres, sketch } from "./sketch.js";
import { byId, categoryName, minutes, page, render } from "./state.js";

export function currentOffer(): Offer | null {
  for (const offer of page.offers.values()) {
    if (!page.answered.has(offer.offerId)) {
      return offer;
    }
  }
  return null;
}

export function drawOffer(): void {
  const offer = page.ended ? null : currentOffer();
  const view = byId("offer-view");
  const wasHidden = view.hidden;
  view.hidden = offer === null;
  document.body.classList.toggle("offer-open", offer !== null);
  if (!offer) {
    return;
  }
  view.dataset.offerId = offer.offerId;
  byId("offer-what").textContent = `${categoryName(offer.category)} · P${offer.priority}`;
  byId("offer-description").textContent = offer.description;
  const where = offer.location ? { lon: offer.location.lon, lat: offer.location.lat } : null;
  const drawing = where ? sketch(page.position, where) : null;
  byId("offer-sketch").replaceChildren(...(drawing ? [drawing] : []));
  byId("offer-distance").textContent = metres(offer.distanceM);
  const bearing = where && page.position ? say("bearingNote", { direction: compassWord(bearingDeg(page.position, where)) }) : "";
  byId("offer-sketch-note").textContent = drawing ? bearing + say("mapNote", { cell: metres(Number(drawing.dataset.cellM)) }) : "";
  byId("offer-eta").textContent = `${Math.max(1, Math.round(offer.etaS / 60))} min`;
  drawCountdown();
  byId("decline-form").hidden = !page.declining;
  const reasons = byId("decline-reasons");
  reasons.replaceChildren(
    ...words().declineReasons.map((reason) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "reason";
      button.textContent = reason;
      button.addEventListener("click", () => void answer(offer, "decline", reason));
      return button;
    }),
  );
  if (wasHidden) {
    byId("accept").focus();
  }
}

export function drawCountdown(): void {
  const offer = currentOffer();
  if (offer) {
    const left = (Number(offer.deadlineMs) - Date.now()) / 1000;
    const element = byId("offer-countdown");
    element.textContent = left > 0 ? minutes(left) : say("timeUp");
    element.dataset.expired = String(left <= 0);
  }
  for (const node of document.querySelectorAll<HTMLElement>("[data-deadline-ms]")) {
    const left = (Number(node.dataset.deadlineMs) - Date.now()) / 1000;
    node.textContent = say("deadline", { clock: node.dataset.clock ?? "", left: minutes(left) });
  }
}

export async function answer(offer: Offer, how: "accept" | "decline", reason = ""): Promise<void> {
  page.answered.add(offer.offerId);
  page.declining = false;
  render();
  if (how === "accept") {
    page.accepting.set(offer.offerId, offer);
    await act("accept", { offerId: offer.offerId });
  } else {
    await act("decline", { offerId: offer.offerId, reason });
  }
}

export function wireOffer(): void {
  byId("accept").addEventListener("click", () => {
    const offer = currentOffer();
    if (offer) {
      void answer(offer, "accept");
    }
  });
  byId("decline").addEventListener("click", () => {
    page.declining = !page.declining;
    render();
    if (page.declining) {
      byId("decline-reasons").querySelector("button")?.focus();
    }
  });
  byId("decline-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const offer = currentOffer();
    const reason = byId<HTMLInputElement>("decline-text").value.trim();
    if (offer && reason !== "") {
      byId<HTMLInputElement>("decline-text").value = "";
      void answer(offer, "decline", reason);
    }
  });
}
