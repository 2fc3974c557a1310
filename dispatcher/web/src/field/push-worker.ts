// The service worker's side of Web Push (#20), bundled into sw.js: a push
// from the dispatcher shows as a notification (接受 / 拒绝 on an offer, 签到
// on a call-up), and an action answers through the normal FieldService
// calls. The answer goes into the app's outbox first (IndexedDB, with a
// fresh idempotency key), then: an open app window is told to send it in
// its session; with none, the worker sends an accept or decline with the
// person's keys and session kept in IndexedDB (opening a session for it
// when none is open), and opens the app for a check-in (which needs the
// position).
// What cannot go now stays in the outbox and leaves when the app opens. A
// click without an action opens (or focuses) the app, on that offer.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { FieldService } from "../gen/pingji/v1/pingji_pb.js";
import * as outbox from "./outbox.js";

/** What the dispatcher pushes (see dispatcher/src/push/notice.rs). */
interface Notice {
  kind: "offer" | "callup" | "message";
  id: string;
  incident_id?: string;
  title: string;
  body: string;
  deadline_ms?: number;
}

// The few service worker types used here (the page's TypeScript lib is the DOM's).
interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface PushEvent extends ExtendableEvent {
  data: { json(): unknown } | null;
}
interface NotificationEvent extends ExtendableEvent {
  action: string;
  notification: Notification;
}
interface WindowClient {
  url: string;
  focus(): Promise<WindowClient>;
  postMessage(message: unknown): void;
}
interface WorkerScope {
  location: Location;
  registration: ServiceWorkerRegistration;
  clients: {
    matchAll(options: { type: "window"; includeUncontrolled: boolean }): Promise<WindowClient[]>;
    openWindow(url: string): Promise<WindowClient | null>;
  };
  addEventListener(type: "push", listener: (event: PushEvent) => void): void;
  addEventListener(type: "notificationclick", listener: (event: NotificationEvent) => void): void;
}

const worker = self as unknown as WorkerScope;

/** The reason given for a decline from the notification (no form to choose one there). */
const DECLINED_FROM_NOTIFICATION = "在通知中拒绝";

function readNotice(event: PushEvent): Notice {
  try {
    const notice = event.data?.json() as Notice | undefined;
    if (notice && typeof notice.title === "string" && typeof notice.kind === "string") {
      return notice;
    }
  } catch {
    // Not JSON: shown as a plain message below.
  }
  return { kind: "message", id: "", title: "平急 · 一线", body: "有新的通知，请打开应用查看。" };
}

worker.addEventListener("push", (event) => {
  const notice = readNotice(event);
  const actions =
    notice.kind === "offer"
      ? [
          { action: "accept", title: "接受" },
          { action: "decline", title: "拒绝" },
        ]
      : notice.kind === "callup"
        ? [{ action: "checkin", title: "签到" }]
        : [];
  const options = {
    body: notice.body,
    // A newer notice about the same offer replaces the older one.
    tag: `${notice.kind}:${notice.id}`,
    renotify: true,
    requireInteraction: notice.kind !== "message",
    icon: "/field/icon-192.png",
    badge: "/field/icon-192.png",
    lang: "zh-CN",
    vibrate: [300, 100, 300, 100, 300],
    data: notice,
    actions,
  };
  event.waitUntil(worker.registration.showNotification(notice.title, options as NotificationOptions));
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const notice = event.notification.data as Notice;
  event.waitUntil(clicked(event.action, notice));
});

async function appWindow(): Promise<WindowClient | undefined> {
  const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
  return windows.find((window) => new URL(window.url).pathname.startsWith("/field/"));
}

async function clicked(action: string, notice: Notice): Promise<void> {
  const kind =
    notice.kind === "offer" && action === "accept"
      ? "accept"
      : notice.kind === "offer" && action === "decline"
        ? "decline"
        : notice.kind === "callup" && action === "checkin"
          ? "checkIn"
          : null;
  if (kind === null) {
    await openApp(notice);
    return;
  }
  const fields: Record<string, unknown> =
    kind === "checkIn"
      ? { callupId: notice.id }
      : kind === "decline"
        ? { offerId: notice.id, reason: DECLINED_FROM_NOTIFICATION }
        : { offerId: notice.id };
  const answer: outbox.Action = { key: outbox.newKey(), kind, at: Date.now(), fields, photos: [], photoRefs: [] };
  await outbox.put(answer);
  const app = await appWindow();
  if (app) {
    app.postMessage({ kind: "pingji-flush" });
    return;
  }
  if (kind === "checkIn") {
    // A check-in brings the person's position, which a worker cannot read:
    // the app opens and sends it from the outbox.
    await worker.clients.openWindow("/field/");
    return;
  }
  await sendFromWorker(answer);
}

/** Opens the app (or brings it forward) where the notice is: the offer takes the screen by itself. */
async function openApp(notice: Notice): Promise<void> {
  const tab = notice.kind === "message" ? "messages" : "home";
  const app = await appWindow();
  if (app) {
    app.postMessage({ kind: "pingji-show", tab });
    await app.focus();
    return;
  }
  await worker.clients.openWindow(tab === "messages" ? "/field/?tab=messages" : "/field/");
}

function reasonOf(error: unknown): string {
  return ConnectError.from(error).findDetails(ErrorInfoSchema)[0]?.reason ?? "";
}

async function sendOne(client: Client<typeof FieldService>, answer: outbox.Action, sessionId: bigint): Promise<void> {
  const common = { sessionId, idempotencyKey: answer.key };
  const fields = answer.fields;
  if (answer.kind === "accept") {
    await client.acceptOffer({ ...common, offerId: String(fields.offerId) });
  } else if (answer.kind === "decline") {
    await client.declineOffer({ ...common, offerId: String(fields.offerId), reason: String(fields.reason) });
  }
}

/** Sends `answer` with the keys the app left; it stays in the outbox when it cannot go now. */
async function sendFromWorker(answer: outbox.Action): Promise<void> {
  const keys = await outbox.keys().catch(() => undefined);
  if (!keys) {
    return;
  }
  const credentials: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${keys.token}`);
    request.header.set("x-pingji-agent-id", keys.agentId);
    return next(request);
  };
  const client = createClient(FieldService, createGrpcWebTransport({ baseUrl: worker.location.origin, interceptors: [credentials] }));
  const listening = new AbortController();
  try {
    try {
      await sendOne(client, answer, keys.sessionId ? BigInt(keys.sessionId) : 0n);
    } catch (error) {
      if (reasonOf(error) !== "NO_SESSION") {
        throw error;
      }
      // No session open (the app is closed): open one for this answer only.
      let sessionId = 0n;
      for await (const message of client.listen({}, { signal: listening.signal })) {
        if (message.body.case === "welcome") {
          sessionId = message.body.value.sessionId;
          break;
        }
      }
      await sendOne(client, answer, sessionId);
    }
    await outbox.remove(answer.key);
  } catch (error) {
    const code = ConnectError.from(error).code;
    // Refused for good (the offer is no longer open, say): the app would drop it too.
    if (code === Code.FailedPrecondition || code === Code.InvalidArgument || code === Code.NotFound) {
      await outbox.remove(answer.key);
    }
  } finally {
    listening.abort();
  }
}
