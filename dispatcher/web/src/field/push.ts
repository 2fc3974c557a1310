// Notifications when the app is closed (Web Push, #20): after sign-in the
// person opts in with "接收通知" (never on page load: browsers ask for the
// permission only after a tap). The app subscribes with the dispatcher's
// VAPID key and registers the subscription on the person's own token. The
// service worker (push-worker.ts) shows each push and answers from the
// notification's actions; for that it reads the person's keys and open
// session from IndexedDB, which the app keeps current here.

import { ConnectError } from "@connectrpc/connect";
import { describe } from "../errors.js";
import { say } from "./i18n.js";
import * as outbox from "./outbox.js";
import { flush } from "./actions.js";
import { AGENT_KEY, TOKEN_KEY, byId, client, page, render, signedIn } from "./state.js";

export type PushState = "unsupported" | "off" | "asking" | "on" | "denied" | "failed";

export const push = { state: "off" as PushState, problem: "" };

/** How long the browser's push service has to make a subscription. */
const SUBSCRIBE_WITHIN_MS = 10_000;

function supported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function keyBytes(base64url: string): Uint8Array {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const text = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(text.length);
  for (let index = 0; index < text.length; index += 1) {
    bytes[index] = text.charCodeAt(index);
  }
  return bytes;
}

/** Keeps the person's keys and session where the service worker reads them. */
export async function keepWorkerKeys(): Promise<void> {
  const token = localStorage.getItem(TOKEN_KEY);
  const agentId = localStorage.getItem(AGENT_KEY);
  try {
    if (token === null || agentId === null) {
      await outbox.clearKeys();
      return;
    }
    await outbox.saveKeys({ agentId, token, sessionId: page.sessionId === null ? "" : page.sessionId.toString() });
  } catch {
    // Without IndexedDB the notifications still show; their actions open the app instead.
  }
}

/** The app's worker registration (not `serviceWorker.ready`, which waits for one controlling this page). */
async function registration(): Promise<ServiceWorkerRegistration> {
  return (await navigator.serviceWorker.getRegistration("/field/")) ?? navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" });
}

/** Subscribes this phone and registers the subscription with the dispatcher. */
export async function enablePush(): Promise<void> {
  if (!supported()) {
    push.state = "unsupported";
    render();
    return;
  }
  push.state = "asking";
  render();
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      push.state = permission === "denied" ? "denied" : "off";
      render();
      return;
    }
    const worker = await registration();
    const { applicationServerKey } = await client.getPushKey({});
    // A browser whose push service is out of reach may never answer.
    const subscription = await Promise.race([
      worker.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(applicationServerKey) }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(say("pushNoAnswer"))), SUBSCRIBE_WITHIN_MS)),
    ]);
    const keys = subscription.toJSON().keys ?? {};
    await client.registerPush({ endpoint: subscription.endpoint, p256dh: keys.p256dh ?? "", auth: keys.auth ?? "" });
    await keepWorkerKeys();
    push.state = "on";
  } catch (error) {
    push.state = "failed";
    push.problem = error instanceof DOMException || !(error instanceof ConnectError) ? String((error as Error).message) : describe(error).message;
  }
  render();
}

/** At sign-out: the subscription is removed here and at the dispatcher (best effort). */
export async function forgetPush(): Promise<void> {
  if (push.state === "on") {
    await disablePush();
  }
}

async function disablePush(): Promise<void> {
  try {
    const subscription = await (await registration()).pushManager.getSubscription();
    if (subscription) {
      await client.removePush({ endpoint: subscription.endpoint });
      await subscription.unsubscribe();
    }
    push.state = "off";
  } catch (error) {
    push.state = "failed";
    push.problem = describe(error).message;
  }
  render();
}

/** Finds out whether this phone is subscribed already. */
export async function readPushState(): Promise<void> {
  if (!supported()) {
    push.state = "unsupported";
    return;
  }
  if (Notification.permission === "denied") {
    push.state = "denied";
    return;
  }
  try {
    const registration = await navigator.serviceWorker.getRegistration("/field/");
    const subscription = await registration?.pushManager.getSubscription();
    push.state = subscription && Notification.permission === "granted" ? "on" : "off";
  } catch {
    push.state = "off";
  }
}

export function drawPush(): void {
  const card = byId("push-card");
  card.hidden = !signedIn() || page.ended !== null;
  card.dataset.state = push.state;
  const enable = byId<HTMLButtonElement>("push-enable");
  enable.hidden = !["off", "asking", "failed"].includes(push.state);
  enable.disabled = push.state === "asking";
  byId("push-disable").hidden = push.state !== "on";
  const state = byId("push-state");
  state.textContent =
    push.state === "on"
      ? say("pushOn")
      : push.state === "denied"
        ? say("pushDenied")
        : push.state === "unsupported"
          ? say("pushUnsupported")
          : push.state === "failed"
            ? say("pushFailed", { problem: push.problem })
            : say("pushHelp");
}

export function wirePush(): void {
  byId("push-enable").addEventListener("click", () => void enablePush());
  byId("push-disable").addEventListener("click", () => void disablePush());
  if ("serviceWorker" in navigator) {
    // The worker put an answer from a notification in the outbox: send it in this session.
    navigator.serviceWorker.addEventListener("message", (event: MessageEvent) => {
      const data = event.data as { kind?: string; tab?: string } | null;
      if (data?.kind === "pingji-flush") {
        void outbox.waiting().then((waiting) => {
          page.queuedCount = waiting.length;
          render();
          void flush();
        });
      } else if (data?.kind === "pingji-show" && data.tab) {
        page.tab = data.tab;
        render();
      }
    });
  }
}
