// The phone app for people in the field (#19): signed in once by the link
// an operator issues, it holds the person's session (FieldService.Listen)
// and sends what they do as unary calls over grpc-web. Everything the
// person does goes first into the outbox (IndexedDB) with an idempotency
// key made when they acted, and leaves it once the dispatcher has answered,
// so that what is done offline is sent when the network is back, once.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AgentStatus,
  CoordinateSystem,
  ErrorReason,
  FieldService,
  ReportOutcome_Kind,
  WithdrawReason,
  type CallUp,
  type DispatchMessage,
  type Incident,
  type Offer,
  type OperatorMessage,
} from "../gen/pingji/v1/pingji_pb.js";
import { describe, type Problem } from "../errors.js";
import { language, say, setLanguage, words } from "./i18n.js";
import * as outbox from "./outbox.js";
import { thumbnail, withinLimit } from "./photos.js";
import { bearingDeg, compassWord, distanceM, metres, sketch, type Point } from "./sketch.js";

// The token and the person's id, kept on this phone only (never in a URL).
const TOKEN_KEY = "pingji.field.token";
const AGENT_KEY = "pingji.field.agent";
const RETRY_MAX_S = 30;
/** How often waiting actions are tried again while the network is down. */
const FLUSH_EVERY_MS = 15_000;
const DEFAULT_INTERVAL_S = 60;
const TOKEN_ENDED = new Set(["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_MISSING"]);
const REPORT_CATEGORIES = ["hazard", "flood", "fire", "medical", "elder_care", "road", "sanitation", "dispute", "power_outage", "other"];

// Take the sign-in link out of the address at once, before anything else
// runs, so that the token stays in no URL, history entry or log.
const anotherPerson = takeSignInLink();

/** Keeps the link's token and id; true when they are another person's than before. */
function takeSignInLink(): boolean {
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

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
}

const credentials: Interceptor = (next) => async (request) => {
  request.header.set("authorization", `Bearer ${localStorage.getItem(TOKEN_KEY) ?? ""}`);
  request.header.set("x-pingji-agent-id", localStorage.getItem(AGENT_KEY) ?? "");
  return next(request);
};

const client: Client<typeof FieldService> = createClient(
  FieldService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [credentials] }),
);

interface Task {
  incidentId: string;
  category: string;
  description: string;
  location: Point | null;
  arrived: boolean;
}

interface Note {
  /** The words, made again when the language changes. */
  text: () => string;
  reason: string;
  kind: "info" | "problem";
}

type Connection = "connecting" | "online" | "reconnecting" | "offline";

// What the page knows, redrawn by render().
let listening: AbortController | null = null;
let sessionId: bigint | null = null;
let connection: Connection = "connecting";
/** Why the session ended for good: replaced elsewhere, or the token no longer works. */
let ended: { why: "replaced" | "token"; problem: string } | null = null;
let name = "";
let status = AgentStatus.AVAILABLE;
let mode = 1;
let intervalS = DEFAULT_INTERVAL_S;
const offers = new Map<string, Offer>();
/** Offers the person has answered (the answer may still wait in the outbox). */
const answered = new Set<string>();
/** Offers accepted whose accept has not been answered yet (offline, say). */
const accepting = new Map<string, Offer>();
let task: Task | null = null;
const callUps = new Map<string, { callUp: CallUp; checkedIn: boolean }>();
const messages = new Map<string, { message: OperatorMessage; read: boolean; replied: boolean }>();
let position: (Point & { accuracy: number }) | null = null;
let locationDenied = false;
let watchId: number | null = null;
let locationTimer: number | null = null;
let queuedCount = 0;
let note: Note | null = null;
let tab = "home";
let declining = false;
const chosenPhotos: Record<string, Blob[]> = { complete: [], report: [] };

// ---------------------------------------------------------------- the session

function signedIn(): boolean {
  return localStorage.getItem(TOKEN_KEY) !== null && localStorage.getItem(AGENT_KEY) !== null;
}

/** Holds the session open: Listen, and again after a lost stream, with a capped backoff. */
async function listen(): Promise<void> {
  listening?.abort();
  const controller = new AbortController();
  listening = controller;
  ended = null;
  let backoffS = 1;
  while (!controller.signal.aborted) {
    connection = "connecting";
    render();
    try {
      for await (const message of client.listen({}, { signal: controller.signal })) {
        backoffS = 1;
        handle(message);
        if (ended) {
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
    sessionId = null;
    connection = navigator.onLine ? "reconnecting" : "offline";
    render();
    await pause(backoffS * 1000, controller.signal);
    backoffS = Math.min(backoffS * 2, RETRY_MAX_S);
  }
}

/** Waits `ms`, or less when the network comes back or `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
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

function end(why: "replaced" | "token", problem: string): void {
  ended = { why, problem };
  listening?.abort();
  listening = null;
  sessionId = null;
  stopLocation();
  render();
}

function handle(message: DispatchMessage): void {
  const body = message.body;
  switch (body.case) {
    case "welcome": {
      const welcome = body.value;
      sessionId = welcome.sessionId;
      connection = "online";
      name = welcome.agent?.spec?.name ?? "";
      status = welcome.agent?.status ?? AgentStatus.AVAILABLE;
      mode = welcome.mode;
      intervalS = welcome.locationIntervalS || DEFAULT_INTERVAL_S;
      offers.clear();
      for (const offer of welcome.openOffers) {
        offers.set(offer.offerId, offer);
      }
      task = welcome.currentIncident ? taskOfIncident(welcome.currentIncident) : null;
      callUps.clear();
      for (const callUp of welcome.callUps) {
        callUps.set(callUp.callupId, { callUp, checkedIn: false });
      }
      for (const unread of welcome.unreadMessages) {
        const known = messages.get(unread.id);
        messages.set(unread.id, { message: unread, read: false, replied: known?.replied ?? false });
      }
      if ([...offers.keys()].some((id) => !answered.has(id))) {
        alertPerson();
      }
      startLocation();
      void flush();
      break;
    }
    case "offer":
      offers.set(body.value.offerId, body.value);
      declining = false;
      alertPerson();
      break;
    case "offerWithdrawn":
      offers.delete(body.value.offerId);
      {
        const withdrawn = body.value;
        tell(() => words().withdrawn[WithdrawReason[withdrawn.cause]] ?? withdrawn.reason, "", "info");
      }
      break;
    case "noLongerNeeded":
      offers.delete(body.value.offerId);
      break;
    case "assignmentConfirmed": {
      const offer = body.value.offer;
      if (offer) {
        offers.delete(offer.offerId);
        task = {
          incidentId: offer.incidentId,
          category: offer.category,
          description: offer.description,
          location: offer.location ?? null,
          arrived: false,
        };
        status = AgentStatus.BUSY;
      }
      break;
    }
    case "assignmentEnded":
      if (task?.incidentId === body.value.incidentId) {
        task = null;
      }
      tell(`${say("ended")}: ${body.value.reason}`, "", "info");
      break;
    case "modeChanged":
      mode = body.value.mode;
      if (body.value.locationIntervalS > 0) {
        intervalS = body.value.locationIntervalS;
        startLocation();
      }
      break;
    case "refused": {
      const reason = ErrorReason[body.value.reason] ?? "";
      if (body.value.reason === ErrorReason.SESSION_REPLACED) {
        ended = { why: "replaced", problem: body.value.message };
      } else if (TOKEN_ENDED.has(reason)) {
        ended = { why: "token", problem: body.value.message };
      } else {
        tell(words().reasons[reason] ?? body.value.message, reason, "problem");
      }
      break;
    }
    case "callUp":
      callUps.set(body.value.callupId, { callUp: body.value, checkedIn: false });
      alertPerson();
      break;
    case "standDown":
      callUps.delete(body.value.callupId);
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
    case "message": {
      const known = messages.get(body.value.id);
      messages.set(body.value.id, { message: body.value, read: known?.read ?? false, replied: known?.replied ?? false });
      alertPerson();
      break;
    }
    default:
      break;
  }
  render();
}

function taskOfIncident(incident: Incident): Task {
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

// ---------------------------------------------------------------- location

/** Watches the position while on duty and sends it every `intervalS`. */
function startLocation(): void {
  stopLocation();
  if (status === AgentStatus.OFF_DUTY || !("geolocation" in navigator)) {
    return;
  }
  watchId = navigator.geolocation.watchPosition(
    (fix) => {
      const first = position === null;
      position = { lon: fix.coords.longitude, lat: fix.coords.latitude, accuracy: fix.coords.accuracy };
      locationDenied = false;
      if (first) {
        void sendLocation();
      }
      render();
    },
    () => {
      locationDenied = true;
      render();
    },
    { enableHighAccuracy: true, maximumAge: 10_000 },
  );
  locationTimer = window.setInterval(() => void sendLocation(), intervalS * 1000);
  void sendLocation();
}

function stopLocation(): void {
  if (watchId !== null) {
    navigator.geolocation.clearWatch(watchId);
    watchId = null;
  }
  if (locationTimer !== null) {
    clearInterval(locationTimer);
    locationTimer = null;
  }
}

/** Live locations are soft state: one lost is replaced by the next, so they are not queued. */
async function sendLocation(): Promise<void> {
  if (sessionId === null || position === null || status === AgentStatus.OFF_DUTY) {
    return;
  }
  try {
    await client.reportLocation({
      sessionId,
      idempotencyKey: outbox.newKey(),
      location: { lon: position.lon, lat: position.lat, crs: CoordinateSystem.WGS84 },
    });
  } catch {
    // The next report, or the next session, brings it up to date.
  }
}

// ---------------------------------------------------------------- actions

/** Records what the person did, with its key, then tries to send it. */
async function act(kind: outbox.ActionKind, fields: Record<string, unknown>, photos: Blob[] = []): Promise<void> {
  const small = await Promise.all(photos.map(withinLimit));
  await outbox.put({ key: outbox.newKey(), kind, at: Date.now(), fields, photos: small, photoRefs: [] });
  queuedCount += 1;
  render();
  await flush();
}

let flushing = false;

/** Sends the waiting actions in the order they were taken; stops at the first that cannot go yet. */
async function flush(): Promise<void> {
  if (flushing) {
    return;
  }
  flushing = true;
  try {
    for (const action of await outbox.waiting()) {
      if (sessionId === null) {
        break;
      }
      try {
        await send(action, sessionId);
      } catch (error) {
        const problem = describe(error);
        if (sendLater(error, problem)) {
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
    queuedCount = (await outbox.waiting()).length;
    render();
  }
}

/** Not an answer about the action: the network, or a session not open yet. */
function sendLater(error: unknown, problem: Problem): boolean {
  const code = ConnectError.from(error).code;
  return (
    problem.reason === "NO_SESSION" ||
    code === Code.Unavailable ||
    code === Code.Unknown ||
    code === Code.DeadlineExceeded ||
    code === Code.Canceled ||
    code === Code.Aborted
  );
}

async function send(action: outbox.Action, session: bigint): Promise<void> {
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
  }
}

/** Uploads the action's photos one by one, keeping each ref as it comes. */
async function upload(action: outbox.Action): Promise<void> {
  while (action.photos.length > 0) {
    const data = new Uint8Array(await action.photos[0].arrayBuffer());
    const answer = await client.uploadPhoto({ data });
    action.photoRefs.push(answer.photoRef);
    action.photos.shift();
    await outbox.put(action);
  }
}

function sent(action: outbox.Action): void {
  accepting.delete(String(action.fields.offerId));
  switch (action.kind) {
    case "checkIn": {
      const entry = callUps.get(String(action.fields.callupId));
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
    default:
      break;
  }
}

function refused(action: outbox.Action, problem: Problem): void {
  const text = () => words().reasons[problem.reason] ?? (problem.message || say("failed"));
  if (action.kind === "accept" || action.kind === "decline") {
    offers.delete(String(action.fields.offerId));
    accepting.delete(String(action.fields.offerId));
  }
  if (action.kind === "complete" || action.kind === "arrived" || action.kind === "status") {
    // The page showed it done before the dispatcher answered: a new
    // session's welcome says how things really are.
    void listen();
  }
  tell(text, problem.reason, "problem");
}

/** How long a note that needs nothing from the person stays. */
const INFO_SHOWN_MS = 10_000;
let noteTimer: number | undefined;

function tell(text: string | (() => string), reason: string, kind: Note["kind"]): void {
  const said = typeof text === "string" ? () => text : text;
  note = said() ? { text: said, reason, kind } : null;
  clearTimeout(noteTimer);
  if (kind === "info") {
    noteTimer = window.setTimeout(() => {
      note = null;
      render();
    }, INFO_SHOWN_MS);
  }
  render();
}

// ---------------------------------------------------------------- alerts

let audio: AudioContext | null = null;

/** A beep and a buzz: an offer, a call-up or a message has come. */
function alertPerson(): void {
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

// ---------------------------------------------------------------- drawing

function currentOffer(): Offer | null {
  for (const offer of offers.values()) {
    if (!answered.has(offer.offerId)) {
      return offer;
    }
  }
  return null;
}

function minutes(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function clock(ms: bigint): string {
  return new Date(Number(ms)).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}

function categoryName(category: string): string {
  return words().categories[category] ?? category;
}

function render(): void {
  const hasSession = signedIn();
  byId("signin-view").hidden = hasSession || ended !== null;
  byId("ended-view").hidden = ended === null;
  byId("app-view").hidden = !hasSession || ended !== null;
  byId("tabs").hidden = !hasSession || ended !== null;
  if (ended) {
    byId("ended-view").dataset.why = ended.why;
    byId("ended-title").textContent = say(ended.why === "replaced" ? "replacedTitle" : "tokenEndedTitle");
    byId("ended-help").textContent = say(ended.why === "replaced" ? "replacedHelp" : "tokenEndedHelp");
    byId("ended-detail").textContent = ended.problem;
    byId("use-this-phone").hidden = ended.why !== "replaced";
  }
  drawConnection();
  drawNote();
  drawOffer();
  drawTask();
  drawCallUps();
  drawStatus();
  drawReport();
  drawMessages();
  for (const view of ["home", "report", "messages"]) {
    byId(`${view}-view`).hidden = tab !== view;
    const button = byId(`tab-${view}`);
    if (tab === view) {
      button.setAttribute("aria-current", "page");
    } else {
      button.removeAttribute("aria-current");
    }
  }
}

function drawConnection(): void {
  const element = byId("connection");
  const shown = !navigator.onLine ? "offline" : connection;
  element.hidden = !signedIn() || ended !== null;
  element.dataset.state = shown;
  element.textContent = say(shown);
  const queued = byId("queued");
  queued.hidden = queuedCount === 0 && shown !== "offline";
  const waiting = queuedCount > 0 ? say("queued", { n: queuedCount }) : "";
  queued.textContent = shown === "offline" ? `${say("offlineHelp")} ${waiting}` : waiting;
  queued.dataset.count = String(queuedCount);
}

function drawNote(): void {
  const element = byId("notice");
  element.hidden = note === null;
  element.textContent = note?.text() ?? "";
  element.dataset.kind = note?.kind ?? "";
  if (note?.reason) {
    element.dataset.reason = note.reason;
  } else {
    delete element.dataset.reason;
  }
}

function drawOffer(): void {
  const offer = ended ? null : currentOffer();
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
  const drawing = where ? sketch(position, where) : null;
  byId("offer-sketch").replaceChildren(...(drawing ? [drawing] : []));
  byId("offer-distance").textContent = metres(offer.distanceM);
  const bearing = where && position ? say("bearingNote", { direction: compassWord(bearingDeg(position, where)) }) : "";
  byId("offer-sketch-note").textContent = drawing ? bearing + say("mapNote", { cell: metres(Number(drawing.dataset.cellM)) }) : "";
  byId("offer-eta").textContent = `${Math.max(1, Math.round(offer.etaS / 60))} min`;
  drawCountdown();
  byId("decline-form").hidden = !declining;
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

function drawCountdown(): void {
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

function drawTask(): void {
  const card = byId("task");
  card.hidden = task === null;
  const idle = byId("idle");
  idle.hidden = task !== null || callUps.size > 0;
  const waiting = [...accepting.values()].map((offer) => categoryName(offer.category));
  idle.textContent = waiting.length > 0 ? say("acceptWaiting", { what: waiting.join("、") }) : say("nothingToDo");
  if (!task) {
    return;
  }
  card.dataset.incidentId = task.incidentId;
  byId("task-what").textContent = categoryName(task.category);
  byId("task-description").textContent = task.description;
  const where = task.location;
  byId("task-where").textContent =
    where && position ? `${metres(distanceM(position, where))} · ${say("bearing")} ${compassWord(bearingDeg(position, where))}` : "";
  byId("task-sketch").replaceChildren(...(where ? [sketch(position, where)] : []));
  byId("task-arrived").hidden = !task.arrived;
  byId<HTMLButtonElement>("arrived").hidden = task.arrived;
  byId("complete-photo-count").textContent = chosenPhotos.complete.length > 0 ? say("photoCount", { n: chosenPhotos.complete.length }) : "";
}

function drawCallUps(): void {
  const list = byId("callups");
  list.replaceChildren(
    ...[...callUps.values()].map(({ callUp, checkedIn }) => {
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
        callUps.set(callUp.callupId, { callUp, checkedIn: true });
        render();
        void act("checkIn", { callupId: callUp.callupId });
      });
      card.append(title, reason, deadline, button);
      return card;
    }),
  );
  drawCountdown();
}

function drawStatus(): void {
  // Until the first tap, the browser keeps an offer silent and still.
  byId("sound-hint").hidden = navigator.userActivation?.hasBeenActive ?? true;
  byId("whoami").textContent = name;
  byId("mode").textContent = words().modes[mode] ?? "";
  byId("mode").dataset.mode = String(mode);
  for (const button of byId("statuses").querySelectorAll<HTMLButtonElement>("button")) {
    const value = AgentStatus[button.dataset.status as keyof typeof AgentStatus];
    button.textContent = words().statuses[button.dataset.status ?? ""] ?? "";
    button.setAttribute("aria-pressed", String(value === status));
  }
  const state = byId("location-state");
  state.textContent =
    status === AgentStatus.OFF_DUTY
      ? say("locationOffDuty")
      : locationDenied
        ? say("locationDenied")
        : position === null
          ? say("locationNone")
          : say("locationSending", { s: intervalS });
}

function drawReport(): void {
  const where = position ? say("reportLocationHere", { m: Math.round(position.accuracy) }) : say("locationNone");
  byId("report-where").textContent = say("reportLocation", { where });
  byId("report-photo-count").textContent = chosenPhotos.report.length > 0 ? say("photoCount", { n: chosenPhotos.report.length }) : "";
}

function drawMessages(): void {
  const list = byId("messages");
  const sorted = [...messages.values()].sort((a, b) => Number(b.message.sentAtMs - a.message.sentAtMs));
  byId("no-messages").hidden = sorted.length > 0;
  const unread = sorted.filter((entry) => !entry.read).length;
  byId("tab-messages").textContent = unread > 0 ? `${words().tabs.messages} (${unread})` : words().tabs.messages;
  // Keep a reply being typed: redraw only when what is shown changed.
  const shape = JSON.stringify([language(), sorted.map((entry) => [entry.message.id, entry.read, entry.replied])]);
  if (list.dataset.shape === shape) {
    return;
  }
  list.dataset.shape = shape;
  list.replaceChildren(
    ...sorted.map((entry) => {
      const { message } = entry;
      const item = document.createElement("li");
      item.className = entry.read ? "message" : "message unread";
      item.dataset.messageId = message.id;
      const head = document.createElement("p");
      head.className = "from";
      head.textContent = `${message.from.replace(/^operator:/, "")} · ${clock(message.sentAtMs)}${entry.read ? "" : ` · ${say("unread")}`}`;
      const text = document.createElement("p");
      text.className = "text";
      text.textContent = message.text;
      item.append(head, text);
      const form = document.createElement("form");
      form.className = "reply";
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "text";
      input.id = `reply-${message.id}`;
      label.htmlFor = input.id;
      label.textContent = entry.replied ? say("replied") : say("reply");
      const buttons = document.createElement("div");
      buttons.className = "actions";
      if (!entry.read) {
        const read = document.createElement("button");
        read.type = "button";
        read.className = "secondary mark-read";
        read.textContent = say("markRead");
        read.addEventListener("click", () => markRead(entry.message.id));
        buttons.append(read);
      }
      const send = document.createElement("button");
      send.type = "submit";
      send.className = "primary";
      send.textContent = say("replySend");
      buttons.append(send);
      form.append(label, input, buttons);
      form.addEventListener("submit", (submitted) => {
        submitted.preventDefault();
        const reply = input.value.trim();
        if (reply === "") {
          input.focus();
          return;
        }
        entry.replied = true;
        markRead(message.id);
        void act("reply", { messageId: message.id, text: reply });
      });
      item.append(form);
      return item;
    }),
  );
}

function markRead(messageId: string): void {
  const entry = messages.get(messageId);
  if (!entry || entry.read) {
    render();
    return;
  }
  entry.read = true;
  render();
  void act("read", { messageId });
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
  render();
}

// ---------------------------------------------------------------- the person's taps

async function answer(offer: Offer, how: "accept" | "decline", reason = ""): Promise<void> {
  answered.add(offer.offerId);
  declining = false;
  render();
  if (how === "accept") {
    accepting.set(offer.offerId, offer);
    await act("accept", { offerId: offer.offerId });
  } else {
    await act("decline", { offerId: offer.offerId, reason });
  }
}

function wire(): void {
  byId("language").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    applyLanguage();
  });
  for (const button of document.querySelectorAll<HTMLButtonElement>(".sign-out")) {
    button.addEventListener("click", () => void signOut());
  }
  byId("use-this-phone").addEventListener("click", () => void listen());
  byId("accept").addEventListener("click", () => {
    const offer = currentOffer();
    if (offer) {
      void answer(offer, "accept");
    }
  });
  byId("decline").addEventListener("click", () => {
    declining = !declining;
    render();
    if (declining) {
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
  byId("arrived").addEventListener("click", () => {
    if (task) {
      task.arrived = true;
      render();
      void act("arrived", { incidentId: task.incidentId });
    }
  });
  byId("complete-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (!task) {
      return;
    }
    const feedback = byId<HTMLTextAreaElement>("feedback");
    const photos = chosenPhotos.complete;
    const incidentId = task.incidentId;
    task = null;
    status = AgentStatus.AVAILABLE;
    chosenPhotos.complete = [];
    byId("complete-thumbs").replaceChildren();
    void act("complete", { incidentId, feedback: feedback.value.trim() }, photos);
    feedback.value = "";
    render();
  });
  for (const which of ["complete", "report"]) {
    const input = byId<HTMLInputElement>(`${which}-photos`);
    input.addEventListener("change", () => {
      const added = [...(input.files ?? [])];
      chosenPhotos[which] = [...chosenPhotos[which], ...added];
      input.value = "";
      render();
      void showThumbnails(which, added);
    });
  }
  byId("report-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const text = byId<HTMLTextAreaElement>("report-text");
    const photos = chosenPhotos.report;
    chosenPhotos.report = [];
    byId("report-thumbs").replaceChildren();
    const where = position ? { lon: position.lon, lat: position.lat } : undefined;
    void act("report", { category: byId<HTMLSelectElement>("report-category").value, text: text.value.trim(), location: where }, photos);
    text.value = "";
    render();
  });
  for (const button of byId("statuses").querySelectorAll<HTMLButtonElement>("button")) {
    button.addEventListener("click", () => {
      const chosen = AgentStatus[button.dataset.status as keyof typeof AgentStatus];
      if (chosen === status) {
        return;
      }
      status = chosen;
      if (status === AgentStatus.OFF_DUTY) {
        stopLocation();
      } else if (watchId === null) {
        startLocation();
      }
      render();
      void act("status", { status: chosen });
    });
  }
  for (const button of byId("tabs").querySelectorAll<HTMLButtonElement>("button")) {
    button.addEventListener("click", () => {
      tab = button.dataset.tab ?? "home";
      render();
    });
  }
  window.addEventListener("online", () => void flush());
  window.addEventListener("offline", () => render());
  // Browsers allow sound and vibration only after the person has tapped
  // the page once: make the sound ready at that first tap.
  const unlock = () => {
    try {
      audio ??= new AudioContext();
      void audio.resume();
    } catch {
      // No Web Audio here: vibration and the screen still tell.
    }
    render();
  };
  document.addEventListener("pointerdown", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });
  window.setInterval(drawCountdown, 1000);
  window.setInterval(() => {
    if (queuedCount > 0) {
      void flush();
    }
  }, FLUSH_EVERY_MS);
}

/** Small pictures of the photos chosen, so the person sees what goes. */
async function showThumbnails(which: string, added: Blob[]): Promise<void> {
  const into = byId(`${which}-thumbs`);
  for (const photo of added) {
    const source = await thumbnail(photo);
    if (source !== "") {
      const picture = new Image();
      picture.src = source;
      picture.alt = `${say("photos")} ${into.children.length + 1}`;
      into.append(picture);
    }
  }
}

async function signOut(): Promise<void> {
  listening?.abort();
  listening = null;
  sessionId = null;
  ended = null;
  stopLocation();
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(AGENT_KEY);
  offers.clear();
  callUps.clear();
  messages.clear();
  task = null;
  await outbox.clear();
  queuedCount = 0;
  tell(() => say("signedOut"), "", "info");
}

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
if (signedIn()) {
  queuedCount = (await outbox.waiting()).length;
  void listen();
}
render();
