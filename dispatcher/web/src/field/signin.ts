// Signing in: the link's token and id taken out of the address, the
// ended screen (replaced elsewhere, or the token no longer works), and
// signing out.

import { say } from "./i18n.js";
import * as outbox from "./outbox.js";
import { forgetPush, keepWorkerKeys } from "./push.js";
import { listen, stopListening, stopLocation } from "./session.js";
import { AGENT_KEY, TOKEN_KEY, byId, page, signedIn, tell } from "./state.js";

/** Keeps the link's token and id; true when they are another person's than before. */
export function takeSignInLink(): boolean {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("t");
  const agentId = fragment.get("a");
  if (window.location.hash !== "") {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  if (!token || !agentId) {
    return false;
  }
  const before = localStorage.getItem(AGENT_KEY);
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem(AGENT_KEY, agentId);
  return before !== null && before !== agentId;
}

/** The sign-in and ended screens. */
export function drawSignIn(): void {
  const hasSession = signedIn();
  byId("signin-view").hidden = hasSession || page.ended !== null;
  byId("ended-view").hidden = page.ended === null;
  byId("app-view").hidden = !hasSession || page.ended !== null;
  byId("tabs").hidden = !hasSession || page.ended !== null;
  if (page.ended) {
    byId("ended-view").dataset.why = page.ended.why;
    byId("ended-title").textContent = say(page.ended.why === "replaced" ? "replacedTitle" : "tokenEndedTitle");
    byId("ended-help").textContent = say(page.ended.why === "replaced" ? "replacedHelp" : "tokenEndedHelp");
    byId("ended-detail").textContent = page.ended.problem;
    byId("use-this-phone").hidden = page.ended.why !== "replaced";
  }
}

export function wireSignIn(): void {
  for (const button of document.querySelectorAll<HTMLButtonElement>(".sign-out")) {
    button.addEventListener("click", () => void signOut());
  }
  byId("use-this-phone").addEventListener("click", () => void listen());
}

export async function signOut(): Promise<void> {
  // This phone no longer gets this person's notifications.
  await forgetPush();
  stopListening();
  page.sessionId = null;
  page.ended = null;
  stopLocation();
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(AGENT_KEY);
  page.offers.clear();
  page.callUps.clear();
  page.messages.clear();
  page.task = null;
  await outbox.clear();
  await keepWorkerKeys();
  page.queuedCount = 0;
  tell(() => say("signedOut"), "", "info");
}
