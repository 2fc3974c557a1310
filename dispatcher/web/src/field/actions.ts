// What the person does goes first into the outbox (IndexedDB) with an
// idempotency key made when they acted, and leaves it once the dispatcher
// has answered, so that what is done offline is sent when the network is
// back, once.

import { Code, ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { AgentStatus, CoordinateSystem } from "../gen/pingji/v1/pingji_pb.js";
import { describe, type Problem } from "../errors.js";
import { say, words } from "./i18n.js";
import * as outbox from "./outbox.js";
import { withinLimit } from "./photos.js";
import { listen, reportPositionNow } from "./session.js";
import { type Point } from "./sketch.js";
import { client, page, render, tell } from "./state.js";

/** Records what the person did, with its key, then tries to send it. */
export async function act(kind: outbox.ActionKind, fields: Record<string, unknown>, photos: Blob[] = []): Promise<void> {
  const small = await Promise.all(photos.map(withinLimit));
  await outbox.put({ key: outbox.newKey(), kind, at: Date.now(), fields, photos: small, photoRefs: [] });
  page.queuedCount += 1;
  render();
  await flush();
}

let flushing = false;

/** A check-in waiting for the phone's first position. */
class NoPositionYet extends Error {}
/** How soon a check-in waiting for a position tries again. */
const POSITION_RETRY_MS = 5_000;

/** Sends the waiting actions in the order they were taken; stops at the first that cannot go yet. */
export async function flush(): Promise<void> {
  if (flushing) {
    return;
  }
  flushing = true;
  try {
    // Help calls first, and even without a session (the dispatcher takes
    // them with session 0): whoever pressed 求助 must not wait behind anything.
    const queued = await outbox.waiting();
    const ordered = [...queued.filter((action) => action.kind === "help"), ...queued.filter((action) => action.kind !== "help")];
    for (const action of ordered) {
      if (page.sessionId === null && action.kind !== "help") {
        break;
      }
      try {
        await send(action, page.sessionId ?? 0n);
      } catch (error) {
        if (error instanceof NoPositionYet) {
          window.setTimeout(() => void flush(), POSITION_RETRY_MS);
          break;
        }
        const problem = describe(error);
        if (sendLater(error, problem)) {
          const delayMs = retryDelayMs(error);
          if (delayMs !== null) {
            window.setTimeout(() => void flush(), delayMs);
          }
          break;
        }
        await outbox.remove(action.key);
        refused(action, problem);
        continue;
      }
      await outbox.remove(action.key);
      sent(action);
    }
  } finally {
    flushing = false;
    page.queuedCount = (await outbox.waiting()).length;
    render();
  }
}

/** How long the dispatcher asked to wait before sending again (a RetryInfo), or null. */
export function retryDelayMs(error: unknown): number | null {
  const delay = ConnectError.from(error).findDetails(RetryInfoSchema)[0]?.retryDelay;
  return delay ? Number(delay.seconds) * 1000 + Math.ceil(delay.nanos / 1_000_000) : null;
}

/**
 * Not an answer about the action: the network, a session not open yet, or
 * too many calls from this phone just now (a RetryInfo says when to send again).
 */
export function sendLater(error: unknown, problem: Problem): boolean {
  const code = ConnectError.from(error).code;
  return (
    problem.reason === "NO_SESSION" ||
    (code === Code.ResourceExhausted && retryDelayMs(error) !== null) ||
    code === Code.Unavailable ||
    code === Code.Unknown ||
    code === Code.DeadlineExceeded ||
    code === Code.Canceled ||
    code === Code.Aborted
  );
}

export async function send(action: outbox.Action, session: bigint): Promise<void> {
  const common = { sessionId: session, idempotencyKey: action.key };
  const fields = action.fields;
  switch (action.kind) {
    case "status":
      await client.setStatus({ ...common, status: fields.status as AgentStatus });
      return;
    case "accept":
      await client.acceptOffer({ ...common, offerId: String(fields.offerId) });
      return;
    case "decline":
      await client.declineOffer({ ...common, offerId: String(fields.offerId), reason: String(fields.reason) });
      return;
    case "arrived":
      await client.reportArrival({ ...common, incidentId: String(fields.incidentId) });
      return;
    case "complete":
      await upload(action);
      await client.completeAssignment({
        ...common,
        incidentId: String(fields.incidentId),
        feedback: String(fields.feedback),
        photoRefs: action.photoRefs,
      });
      return;
    case "checkIn":
      // "I am here": the position goes first (the dispatcher refuses a
      // check-in without a fresh one), also off duty, when none is sent.
      if (!(await reportPositionNow(session))) {
        throw new NoPositionYet();
      }
      await client.checkIn({ ...common, callupId: String(fields.callupId) });
      return;
    case "report": {
      await upload(action);
      const where = fields.location as Point | undefined;
      await client.submitFieldReport({
        ...common,
        location: where ? { lon: where.lon, lat: where.lat, crs: CoordinateSystem.WGS84 } : undefined,
        category: String(fields.category),
        text: String(fields.text),
        photoRefs: action.photoRefs,
      });
      return;
    }
    case "reply":
      await client.replyToMessage({ ...common, messageId: String(fields.messageId), text: String(fields.text) });
      return;
    case "read":
      await client.markMessageRead({ ...common, messageId: String(fields.messageId) });
      return;
    case "safetyCheckIn":
      await client.safetyCheckIn(common);
      return;
    case "help": {
      const where = fields.location as Point | undefined;
      await client.requestHelp({
        ...common,
        location: where ? { lon: where.lon, lat: where.lat, crs: CoordinateSystem.WGS84 } : undefined,
        text: String(fields.text ?? ""),
      });
      return;
    }
  }
}

/** Uploads the action's photos one by one, keeping each ref as it comes. */
export async function upload(action: outbox.Action): Promise<void> {
  while (action.photos.length > 0) {
    const data = new Uint8Array(await action.photos[0].arrayBuffer());
    const answer = await client.uploadPhoto({ data });
    action.photoRefs.push(answer.photoRef);
    action.photos.shift();
    await outbox.put(action);
  }
}

export function sent(action: outbox.Action): void {
  page.accepting.delete(String(action.fields.offerId));
  switch (action.kind) {
    case "accept":
    case "decline":
      // Answered here or from a notification: the offer leaves the screen.
      page.answered.add(String(action.fields.offerId));
      break;
    case "checkIn": {
      const entry = page.callUps.get(String(action.fields.callupId));
      if (entry) {
        entry.checkedIn = true;
      }
      break;
    }
    case "report":
      tell(() => say("reportSent"), "", "info");
      break;
    case "complete":
      tell(() => say("done"), "", "info");
      break;
    case "safetyCheckIn":
      tell(() => say("safetySent"), "", "info");
      break;
    case "help":
      tell(() => say("helpSent"), "", "info");
      break;
    default:
      break;
  }
}

export function refused(action: outbox.Action, problem: Problem): void {
  const text = () => words().reasons[problem.reason] ?? (problem.message || say("failed"));
  if (action.kind === "accept" || action.kind === "decline") {
    page.offers.delete(String(action.fields.offerId));
    page.accepting.delete(String(action.fields.offerId));
  }
  if (action.kind === "complete" || action.kind === "arrived" || action.kind === "status") {
    // The page showed it done before the dispatcher answered: a new
    // session's welcome says how things really are.
    void listen();
  }
  tell(text, problem.reason, "problem");
}
