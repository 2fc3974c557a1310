// The home screen: the current task (arrived, completed with feedback and
// photos), call-ups to check in to, and the person's status.

import { AgentStatus } from "../gen/pingji/v1/pingji_pb.js";
import { say, words } from "./i18n.js";
import { act } from "./actions.js";
import { drawCountdown } from "./offer.js";
import { locating, startLocation, stopLocation } from "./session.js";
import { bearingDeg, compassWord, distanceM, metres, sketch } from "./sketch.js";
import { byId, categoryName, clock, page, render } from "./state.js";

export function drawTask(): void {
  const card = byId("task");
  card.hidden = page.task === null;
  const idle = byId("idle");
  idle.hidden = page.task !== null || page.callUps.size > 0;
  const waiting = [...page.accepting.values()].map((offer) => categoryName(offer.category));
  idle.textContent = waiting.length > 0 ? say("acceptWaiting", { what: waiting.join("、") }) : say("nothingToDo");
  if (!page.task) {
    return;
  }
  card.dataset.incidentId = page.task.incidentId;
  byId("task-what").textContent = categoryName(page.task.category);
  byId("task-description").textContent = page.task.description;
  const where = page.task.location;
  byId("task-where").textContent =
    where && page.position ? `${metres(distanceM(page.position, where))} · ${say("bearing")} ${compassWord(bearingDeg(page.position, where))}` : "";
  byId("task-sketch").replaceChildren(...(where ? [sketch(page.position, where)] : []));
  byId("task-arrived").hidden = !page.task.arrived;
  byId<HTMLButtonElement>("arrived").hidden = page.task.arrived;
  byId("complete-photo-count").textContent = page.chosenPhotos.complete.length > 0 ? say("photoCount", { n: page.chosenPhotos.complete.length }) : "";
}

export function drawCallUps(): void {
  const list = byId("callups");
  list.replaceChildren(
    ...[...page.callUps.values()].map(({ callUp, checkedIn }) => {
      const card = document.createElement("section");
      card.className = "card callup";
      card.dataset.callupId = callUp.callupId;
      const title = document.createElement("h2");
      title.textContent = say("callUpTitle");
      const reason = document.createElement("p");
      reason.textContent = callUp.reason;
      const deadline = document.createElement("p");
      deadline.className = "deadline";
      deadline.dataset.deadlineMs = String(callUp.deadlineMs);
      deadline.dataset.clock = clock(callUp.deadlineMs);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "primary check-in";
      button.disabled = checkedIn;
      button.textContent = say(checkedIn ? "checkedIn" : "checkIn");
      button.addEventListener("click", () => {
        page.callUps.set(callUp.callupId, { callUp, checkedIn: true });
        render();
        void act("checkIn", { callupId: callUp.callupId });
      });
      card.append(title, reason, deadline, button);
      return card;
    }),
  );
  drawCountdown();
}

export function drawStatus(): void {
  // Until the first tap, the browser keeps an offer silent and still.
  byId("sound-hint").hidden = navigator.userActivation?.hasBeenActive ?? true;
  byId("whoami").textContent = page.name;
  byId("mode").textContent = words().modes[page.mode] ?? "";
  byId("mode").dataset.mode = String(page.mode);
  for (const button of byId("statuses").querySelectorAll<HTMLButtonElement>("button")) {
    const value = AgentStatus[button.dataset.status as keyof typeof AgentStatus];
    button.textContent = words().statuses[button.dataset.status ?? ""] ?? "";
    button.setAttribute("aria-pressed", String(value === page.status));
  }
  const state = byId("location-state");
  state.textContent =
    page.status === AgentStatus.OFF_DUTY
      ? say("locationOffDuty")
      : page.locationDenied
        ? say("locationDenied")
        : page.position === null
          ? say("locationNone")
          : say("locationSending", { s: page.intervalS });
}

export function wireTask(): void {
  byId("arrived").addEventListener("click", () => {
    if (page.task) {
      page.task.arrived = true;
      render();
      void act("arrived", { incidentId: page.task.incidentId });
    }
  });
  byId("complete-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (!page.task) {
      return;
    }
    const feedback = byId<HTMLTextAreaElement>("feedback");
    const photos = page.chosenPhotos.complete;
    const incidentId = page.task.incidentId;
    page.task = null;
    page.status = AgentStatus.AVAILABLE;
    page.chosenPhotos.complete = [];
    byId("complete-thumbs").replaceChildren();
    void act("complete", { incidentId, feedback: feedback.value.trim() }, photos);
    feedback.value = "";
    render();
  });
  for (const button of byId("statuses").querySelectorAll<HTMLButtonElement>("button")) {
    button.addEventListener("click", () => {
      const chosen = AgentStatus[button.dataset.status as keyof typeof AgentStatus];
      if (chosen === page.status) {
        return;
      }
      page.status = chosen;
      if (page.status === AgentStatus.OFF_DUTY) {
        stopLocation();
      } else if (!locating()) {
        startLocation();
      }
      render();
      void act("status", { status: chosen });
    });
  }
}
