// Safety on scene: the check-in prompt (报平安) while a check-in is due on
// the task, and the help button (求助), always there, with a confirm step
// against pocket presses. Both go through the outbox, so that offline they
// wait on the phone and go when the network is back (help first).

import { say } from "./i18n.js";
import { act } from "./actions.js";
import { byId, clock, minutes, page, render, signedIn } from "./state.js";

/** The prompt shows this long before the check-in is due (and after). */
const PROMPT_BEFORE_S = 120;

export function drawSafety(): void {
  const card = byId("safety");
  const due = page.safetyDue;
  const shown = page.task !== null && due !== null && due.incidentId === page.task.incidentId && due.dueMs / 1000 - Date.now() / 1000 <= PROMPT_BEFORE_S;
  card.hidden = !shown;
  if (shown && due) {
    const leftS = due.dueMs / 1000 - Date.now() / 1000;
    const overdue = leftS <= 0 || due.misses > 0;
    card.dataset.overdue = String(overdue);
    byId("safety-when").textContent = overdue ? say("safetyOverdue") : say("safetyDue", { clock: clock(BigInt(due.dueMs)), left: minutes(leftS) });
    byId("safety-missed").textContent = due.misses > 0 ? say("safetyMissed", { n: due.misses }) : "";
  }
  byId("help").hidden = !signedIn() || page.ended !== null;
  const dialog = byId("help-confirm");
  dialog.hidden = !page.confirmingHelp;
  byId("help").setAttribute("aria-expanded", String(page.confirmingHelp));
}

export function wireSafety(): void {
  byId("safety-check-in").addEventListener("click", () => {
    const due = page.safetyDue;
    if (!due) {
      return;
    }
    // Shown done at once; the dispatcher's answer sets the next due time.
    page.safetyDue = { ...due, dueMs: Date.now() + due.intervalS * 1000, misses: 0 };
    render();
    void act("safetyCheckIn", {});
  });
  byId("help").addEventListener("click", () => {
    page.confirmingHelp = true;
    render();
    byId<HTMLButtonElement>("help-send").focus();
  });
  byId("help-cancel").addEventListener("click", () => closeHelp());
  byId("help-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeHelp();
    }
  });
  byId<HTMLFormElement>("help-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = byId<HTMLInputElement>("help-text");
    const where = page.position ? { lon: page.position.lon, lat: page.position.lat } : undefined;
    page.confirmingHelp = false;
    void act("help", { location: where, text: text.value.trim() });
    text.value = "";
    if (!navigator.onLine) {
      // Kept on the phone; flush sends it first when the network is back.
      page.note = { text: () => say("helpQueued"), reason: "", kind: "info" };
    }
    render();
    byId("help").focus();
  });
}

function closeHelp(): void {
  page.confirmingHelp = false;
  render();
  byId("help").focus();
}
