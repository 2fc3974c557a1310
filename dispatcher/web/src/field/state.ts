// What the phone app knows and shares between its screens: the person's
// credentials on this phone, the grpc-web client, the page's state (one
// object, redrawn by render()), the note at the top, and small formatters.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AgentStatus, FieldService, type CallUp, type Offer, type OperatorMessage } from "../gen/pingji/v1/pingji_pb.js";
import { language, words } from "./i18n.js";
import { type Point } from "./sketch.js";

export const TOKEN_KEY = "pingji.field.token";
export const AGENT_KEY = "pingji.field.agent";

export const DEFAULT_INTERVAL_S = 60;
export const TOKEN_ENDED = new Set(["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_MISSING"]);

export function byId<T extends HTMLElement>(id: string): T {
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

export const client: Client<typeof FieldService> = createClient(
  FieldService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [credentials] }),
);

export interface Task {
  incidentId: string;
  category: string;
  description: string;
  location: Point | null;
  arrived: boolean;
}

export interface Note {
  /** The words, made again when the language changes. */
  text: () => string;
  reason: string;
  kind: "info" | "problem";
}

export type Connection = "connecting" | "online" | "reconnecting" | "offline";

/** What the page knows, redrawn by render(). */
export const page = {
  sessionId: null as bigint | null,
  connection: "connecting" as Connection,
  /** Why the session ended for good: replaced elsewhere, or the token no longer works. */
  ended: null as { why: "replaced" | "token"; problem: string } | null,
  name: "",
  status: AgentStatus.AVAILABLE,
  mode: 1,
  intervalS: DEFAULT_INTERVAL_S,
  offers: new Map<string, Offer>(),
  /** Offers the person has answered (the answer may still wait in the outbox). */
  answered: new Set<string>(),
  /** Offers accepted whose accept has not been answered yet (offline, say). */
  accepting: new Map<string, Offer>(),
  task: null as Task | null,
  callUps: new Map<string, { callUp: CallUp; checkedIn: boolean }>(),
  messages: new Map<string, { message: OperatorMessage; read: boolean; replied: boolean }>(),
  position: null as (Point & { accuracy: number }) | null,
  locationDenied: false,
  queuedCount: 0,
  note: null as Note | null,
  tab: "home",
  declining: false,
  chosenPhotos: { complete: [], report: [] } as Record<string, Blob[]>,
  /** The next safety check-in on the task (报平安): when, how often, missed so far. */
  safetyDue: null as { incidentId: string; dueMs: number; intervalS: number; misses: number } | null,
  /** The help confirmation is open. */
  confirmingHelp: false,
};

let renderer: () => void = () => {};

/** Sets what render() does: the app's drawing of every screen. */
export function onRender(draw: () => void): void {
  renderer = draw;
}

/** Redraws the page from what it knows. */
export function render(): void {
  renderer();
}

export function signedIn(): boolean {
  return localStorage.getItem(TOKEN_KEY) !== null && localStorage.getItem(AGENT_KEY) !== null;
}

/** How long a note that needs nothing from the person stays. */
const INFO_SHOWN_MS = 10_000;
let noteTimer: number | undefined;

export function tell(text: string | (() => string), reason: string, kind: Note["kind"]): void {
  const said = typeof text === "string" ? () => text : text;
  page.note = said() ? { text: said, reason, kind } : null;
  clearTimeout(noteTimer);
  if (kind === "info") {
    noteTimer = window.setTimeout(() => {
      page.note = null;
      render();
    }, INFO_SHOWN_MS);
  }
  render();
}

export function minutes(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

export function clock(ms: bigint): string {
  return new Date(Number(ms)).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}

export function categoryName(category: string): string {
  return words().categories[category] ?? category;
}
