// The phone app for people in the field (#19): signed in once by the link
// an operator issues, it holds the person's session (FieldService.Listen)
// and sends what they do as unary calls over grpc-web. Everything the
// person does goes first into the outbox (IndexedDB) with an idempotency
// key made when they acted, and leaves it once the dispatcher has answered,
// so that what is done offline is sent when the network is back, once.

import { language, say, setLanguage, words } from "./i18n.js";
import * as outbox from "./outbox.js";
import { flush } from "./actions.js";
import { drawMessages } from "./messages.js";
import { drawCountdown, drawOffer, wireOffer } from "./offer.js";
import { drawReport, wireReports } from "./reports.js";
import { wireRecord } from "./record.js";
import { drawSafety, wireSafety } from "./safety.js";
import { drawShifts, wireShifts } from "./shifts.js";
import { drawPush, keepWorkerKeys, readPushState, wirePush } from "./push.js";
import { listen, unlockSound } from "./session.js";
import { drawSignIn, takeSignInLink, wireSignIn } from "./signin.js";
import { byId, categoryName, onRender, page, render, signedIn } from "./state.js";
import { drawCallUps, drawStatus, drawTask, wireTask } from "./task.js";

// Take the sign-in link out of the address at once, before anything else
// runs, so that the token stays in no URL, history entry or log.
const anotherPerson = takeSignInLink();

/** How often waiting actions are tried again while the network is down. */
const FLUSH_EVERY_MS = 15_000;

const REPORT_CATEGORIES = ["hazard", "flood", "fire", "medical", "elder_care", "road", "sanitation", "dispute", "power_outage", "other"];

function drawAll(): void {
  drawSignIn();
  drawConnection();
  drawNote();
  drawOffer();
  drawTask();
  drawSafety();
  drawCallUps();
  drawStatus();
  drawReport();
  drawMessages();
  drawPush();
  for (const view of ["home", "report", "messages"]) {
    byId(`${view}-view`).hidden = page.tab !== view;
    const button = byId(`tab-${view}`);
    if (page.tab === view) {
      button.setAttribute("aria-current", "page");
    } else {
      button.removeAttribute("aria-current");
    }
  }
}

function drawConnection(): void {
  const element = byId("connection");
  const shown = !navigator.onLine ? "offline" : page.connection;
  element.hidden = !signedIn() || page.ended !== null;
  element.dataset.state = shown;
  element.textContent = say(shown);
  const queued = byId("queued");
  queued.hidden = page.queuedCount === 0 && shown !== "offline";
  const waiting = page.queuedCount > 0 ? say("queued", { n: page.queuedCount }) : "";
  queued.textContent = shown === "offline" ? `${say("offlineHelp")} ${waiting}` : waiting;
  queued.dataset.count = String(page.queuedCount);
}

function drawNote(): void {
  const element = byId("notice");
  element.hidden = page.note === null;
  element.textContent = page.note?.text() ?? "";
  element.dataset.kind = page.note?.kind ?? "";
  if (page.note?.reason) {
    element.dataset.reason = page.note.reason;
  } else {
    delete element.dataset.reason;
  }
}

function applyLanguage(): void {
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
  document.title = say("title");
  for (const node of document.querySelectorAll<HTMLElement>("[data-t]")) {
    node.textContent = say(node.dataset.t as Parameters<typeof say>[0]);
  }
  for (const button of byId("tabs").querySelectorAll<HTMLButtonElement>("button")) {
    button.textContent = words().tabs[button.dataset.tab ?? ""] ?? "";
  }
  const toggle = byId("language");
  toggle.textContent = say("language");
  toggle.lang = language() === "zh" ? "en" : "zh-CN";
  const category = byId<HTMLSelectElement>("report-category");
  const chosen = category.value || REPORT_CATEGORIES[0];
  category.replaceChildren(...REPORT_CATEGORIES.map((value) => new Option(categoryName(value), value)));
  category.value = chosen;
  // Drawn here and when read, not on every render: that would reset an
  // open swap form's choice.
  drawShifts();
  render();
}

function wire(): void {
  byId("language").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    applyLanguage();
  });
  wireSignIn();
  wireOffer();
  wireTask();
  wireSafety();
  wireReports();
  wirePush();
  wireRecord();
  wireShifts();
  for (const button of byId("tabs").querySelectorAll<HTMLButtonElement>("button")) {
    button.addEventListener("click", () => {
      page.tab = button.dataset.tab ?? "home";
      render();
    });
  }
  window.addEventListener("online", () => void flush());
  window.addEventListener("offline", () => render());
  document.addEventListener("pointerdown", unlockSound, { once: true });
  document.addEventListener("keydown", unlockSound, { once: true });
  window.setInterval(drawCountdown, 1000);
  window.setInterval(drawSafety, 1000);
  window.setInterval(() => {
    if (page.queuedCount > 0) {
      void flush();
    }
  }, FLUSH_EVERY_MS);
}

onRender(drawAll);
wire();
applyLanguage();
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).catch(() => {
    // Without it the app still works online; only the offline shell is missing.
  });
}
if (anotherPerson) {
  // What the last person left unsent is theirs, not this person's.
  await outbox.clear();
}
// A notification about a message opens the app on the messages.
if (new URLSearchParams(window.location.search).get("tab") === "messages") {
  page.tab = "messages";
  history.replaceState(null, "", window.location.pathname);
}
if (signedIn()) {
  page.queuedCount = (await outbox.waiting()).length;
  await readPushState();
  void keepWorkerKeys();
  void listen();
}
render();
