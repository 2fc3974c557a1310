// The person's session: Listen held open (and again after a lost stream),
// what the dispatcher sends, the position sent at the mode's interval, and
// the beep and buzz of an offer, a call-up or a message.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  AgentStatus,
  CoordinateSystem,
  ErrorReason,
  ReportOutcome_Kind,
  WithdrawReason,
  type DispatchMessage,
  type Incident,
  type SafetyCheckDue,
} from "../gen/pingji/v1/pingji_pb.js";
import { describe } from "../errors.js";
import { say, words } from "./i18n.js";
import * as outbox from "./outbox.js";
import { flush } from "./actions.js";
import { keepWorkerKeys } from "./push.js";
import { loadShifts } from "./shifts.js";
import { AGENT_KEY, DEFAULT_INTERVAL_S, TOKEN_ENDED, type Task, client, page, render, tell } from "./state.js";

const RETRY_MAX_S = 30;

let listening: AbortController | null = null;

let watchId: number | null = null;

let locationTimer: number | null = null;

/** Holds the session open: Listen, and again after a lost stream, with a capped backoff. */
export async function listen(): Promise<void> {
  listening?.abort();
  const controller = new AbortController();
  listening = controller;
  page.ended = null;
  let backoffS = 1;
  while (!controller.signal.aborted) {
    page.connection = "connecting";
    render();
    try {
      for await (const message of client.listen({}, { signal: controller.signal })) {
        backoffS = 1;
        handle(message);
        if (page.ended) {
          controller.abort();
          stopLocation();
          render();
          return;
        }
      }
    } catch (error) {
      if (controller.signal.aborted) {
        return;
      }
      const problem = describe(error);
      if (TOKEN_ENDED.has(problem.reason) || ConnectError.from(error).code === Code.Unauthenticated) {
        end("token", problem.message);
        return;
      }
    }
    page.sessionId = null;
    page.connection = navigator.onLine ? "reconnecting" : "offline";
    render();
    await pause(backoffS * 1000, controller.signal);
    backoffS = Math.min(backoffS * 2, RETRY_MAX_S);
  }
}

/** Waits `ms`, or less when the network comes back or `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener("online", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done);
    signal.addEventListener("abort", done);
  });
}

export function end(why: "replaced" | "token", problem: string): void {
  page.ended = { why, problem };
  listening?.abort();
  listening = null;
  page.sessionId = null;
  stopLocation();
  render();
}

export function handle(message: DispatchMessage): void {
  const body = message.body;
  switch (body.case) {
    case "welcome": {
      const welcome = body.value;
      page.sessionId = welcome.sessionId;
      void keepWorkerKeys();
      page.connection = "online";
      void loadShifts();
      page.name = welcome.agent?.spec?.name ?? "";
      page.status = welcome.agent?.status ?? AgentStatus.AVAILABLE;
      page.mode = welcome.mode;
      page.intervalS = welcome.locationIntervalS || DEFAULT_INTERVAL_S;
      page.offers.clear();
      for (const offer of welcome.openOffers) {
        page.offers.set(offer.offerId, offer);
      }
      page.task = welcome.currentIncident ? taskOfIncident(welcome.currentIncident) : null;
      page.safetyDue = safetyDueOf(welcome.safetyCheckDue);
      page.callUps.clear();
      for (const callUp of welcome.callUps) {
        page.callUps.set(callUp.callupId, { callUp, checkedIn: false });
      }
      for (const unread of welcome.unreadMessages) {
        const known = page.messages.get(unread.id);
        page.messages.set(unread.id, { message: unread, read: false, replied: known?.replied ?? false });
      }
      if ([...page.offers.keys()].some((id) => !page.answered.has(id))) {
        alertPerson();
      }
      startLocation();
      void flush();
      break;
    }
    case "offer":
      page.offers.set(body.value.offerId, body.value);
      page.declining = false;
      alertPerson();
      break;
    case "offerWithdrawn":
      page.offers.delete(body.value.offerId);
      {
        const withdrawn = body.value;
        tell(() => words().withdrawn[WithdrawReason[withdrawn.cause]] ?? withdrawn.reason, "", "info");
      }
      break;
    case "noLongerNeeded":
      page.offers.delete(body.value.offerId);
      break;
    case "assignmentConfirmed": {
      const offer = body.value.offer;
      if (offer) {
        page.offers.delete(offer.offerId);
        page.task = {
          incidentId: offer.incidentId,
          category: offer.category,
          description: offer.description,
          location: offer.location ?? null,
          arrived: false,
        };
        page.status = AgentStatus.BUSY;
      }
      break;
    }
    case "assignmentEnded":
      if (page.task?.incidentId === body.value.incidentId) {
        page.task = null;
        page.safetyDue = null;
      }
      tell(`${say("ended")}: ${body.value.reason}`, "", "info");
      break;
    case "modeChanged":
      page.mode = body.value.mode;
      if (body.value.locationIntervalS > 0) {
        page.intervalS = body.value.locationIntervalS;
        startLocation();
      }
      break;
    case "refused": {
      const reason = ErrorReason[body.value.reason] ?? "";
      if (body.value.reason === ErrorReason.SESSION_REPLACED) {
        page.ended = { why: "replaced", problem: body.value.message };
      } else if (TOKEN_ENDED.has(reason)) {
        page.ended = { why: "token", problem: body.value.message };
      } else {
        tell(words().reasons[reason] ?? body.value.message, reason, "problem");
      }
      break;
    }
    case "callUp":
      page.callUps.set(body.value.callupId, { callUp: body.value, checkedIn: false });
      alertPerson();
      break;
    case "standDown":
      page.callUps.delete(body.value.callupId);
      tell(body.value.reason, "", "info");
      break;
    case "reportOutcome":
      {
        const outcome = body.value;
        const said = words().outcomes[ReportOutcome_Kind[outcome.kind]] ?? outcome.outcome;
        const why = outcome.reason || outcome.feedback;
        tell(why ? `${said}: ${why}` : said, "", "info");
      }
      break;
    case "safetyCheckDue": {
      const before = page.safetyDue;
      page.safetyDue = safetyDueOf(body.value);
      if (page.safetyDue && page.safetyDue.misses > (before?.misses ?? 0)) {
        alertPerson();
      }
      break;
    }
    case "helpCall": {
      const call = body.value;
      tell(() => say("helpCall", { name: call.name || call.agentId, text: call.text || say("help") }), "HELP_CALL", "problem");
      alertPerson();
      break;
    }
    case "message": {
      const known = page.messages.get(body.value.id);
      page.messages.set(body.value.id, { message: body.value, read: known?.read ?? false, replied: known?.replied ?? false });
      alertPerson();
      break;
    }
    default:
      break;
  }
  render();
}

/** When the next safety check-in is due; null when none is (due 0). */
export function safetyDueOf(due: SafetyCheckDue | undefined): typeof page.safetyDue {
  if (!due || due.dueMs === 0n) {
    return null;
  }
  return { incidentId: due.incidentId, dueMs: Number(due.dueMs), intervalS: due.intervalS, misses: due.misses };
}

export function taskOfIncident(incident: Incident): Task {
  const agentId = localStorage.getItem(AGENT_KEY);
  const mine = incident.assignments.find((assignment) => assignment.agentId === agentId);
  return {
    incidentId: incident.id,
    category: incident.category,
    description: incident.description,
    location: incident.location ?? null,
    arrived: (mine?.arrivedAtMs ?? 0n) > 0n,
  };
}

/** Watches the position while on duty and sends it every `intervalS`. */
export function startLocation(): void {
  stopLocation();
  if (page.status === AgentStatus.OFF_DUTY || !("geolocation" in navigator)) {
    return;
  }
  watchId = navigator.geolocation.watchPosition(
    (fix) => {
      const first = page.position === null;
      page.position = { lon: fix.coords.longitude, lat: fix.coords.latitude, accuracy: fix.coords.accuracy };
      page.locationDenied = false;
      if (first) {
        void sendLocation();
      }
      render();
    },
    () => {
      page.locationDenied = true;
      render();
    },
    { enableHighAccuracy: true, maximumAge: 10_000 },
  );
  locationTimer = window.setInterval(() => void sendLocation(), page.intervalS * 1000);
  void sendLocation();
}

export function stopLocation(): void {
  if (watchId !== null) {
    navigator.geolocation.clearWatch(watchId);
    watchId = null;
  }
  if (locationTimer !== null) {
    clearInterval(locationTimer);
    locationTimer = null;
  }
}

/**
 * Reports where the person is now, for a check-in ("I am here"): the
 * watched position, or one read for it (off duty nothing is watched). False
 * while no position can be had (a cold GPS): the check-in waits. A refused
 * permission is not waited for: the check-in goes, and the dispatcher's
 * answer says that it needs the position.
 */
export async function reportPositionNow(sessionId: bigint): Promise<boolean> {
  const fix = watchId !== null && page.position !== null ? page.position : await readPosition();
  if (fix === "denied") {
    return true;
  }
  if (fix === null) {
    return false;
  }
  await client.reportLocation({
    sessionId,
    idempotencyKey: outbox.newKey(),
    location: { lon: fix.lon, lat: fix.lat, crs: CoordinateSystem.WGS84 },
  });
  return true;
}

/** One reading of the position, kept as the page's; null when none came in time. */
function readPosition(): Promise<{ lon: number; lat: number } | "denied" | null> {
  if (!("geolocation" in navigator)) {
    return Promise.resolve("denied");
  }
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (fix) => {
        page.position = { lon: fix.coords.longitude, lat: fix.coords.latitude, accuracy: fix.coords.accuracy };
        page.locationDenied = false;
        resolve(page.position);
      },
      (error) => {
        page.locationDenied = error.code === error.PERMISSION_DENIED;
        resolve(page.locationDenied ? "denied" : null);
      },
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 15_000 },
    );
  });
}

/** Live locations are soft state: one lost is replaced by the next, so they are not queued. */
export async function sendLocation(): Promise<void> {
  if (page.sessionId === null || page.position === null || page.status === AgentStatus.OFF_DUTY) {
    return;
  }
  try {
    await client.reportLocation({
      sessionId: page.sessionId,
      idempotencyKey: outbox.newKey(),
      location: { lon: page.position.lon, lat: page.position.lat, crs: CoordinateSystem.WGS84 },
    });
  } catch {
    // The next report, or the next session, brings it up to date.
  }
}

/** Stops holding the session open (signing out). */
export function stopListening(): void {
  listening?.abort();
  listening = null;
}

/** Whether the position is being watched. */
export function locating(): boolean {
  return watchId !== null;
}

let audio: AudioContext | null = null;

/** A beep and a buzz: an offer, a call-up or a message has come. */
export function alertPerson(): void {
  navigator.vibrate?.([300, 120, 300]);
  try {
    audio ??= new AudioContext();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.value = 0.3;
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.4);
  } catch {
    // No sound on this phone: the screen and the vibration still tell.
  }
}

/** Browsers allow sound and vibration only after the person has tapped
 * the page once: make the sound ready at that first tap. */
export function unlockSound(): void {
  try {
    audio ??= new AudioContext();
    void audio.resume();
  } catch {
    // No Web Audio here: vibration and the screen still tell.
  }
  render();
}
