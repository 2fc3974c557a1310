// The command map's page: log in with an operator token, then the city
// with people, incidents, an event feed and key figures, live. A
// dispatcher (and up) creates incidents by clicking the map, closes and
// cancels them, and triages field reports; a commander switches areas'
// modes, activates and ends plans and issues call-ups. Every call goes to
// the dispatcher's CommandService over grpc-web, with the client generated
// from the .proto; the server enforces the roles, the page only hides what
// the role may not do.

import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AgentStatus,
  AreaLevel,
  CapService,
  CommandService,
  SupplyService,
  ShelterService,
  type Shelter,
  type Depot,
  type SupplyRequest,
  type CapSuggestion,
  IncidentStatus,
  Mode,
  OperatorRole,
  Role,
  type Area,
  type Callup,
  type Event,
  type Event_IncidentReported,
  type ExplainIncidentResponse,
  type FindDuplicatesResponse,
  IncidentSchema,
  type Incident,
  type MessageAudience,
  type OperatorMessage,
  ReplayPlay,
  type ReplayState,
  type Plan,
  type PlanActivation,
} from "./gen/pingji/v1/pingji_pb.js";
import { mountActivity } from "./activity.js";
import { mountDuty } from "./duty.js";
import { dispatcherNow, followDispatcherClock, forgetDispatcherClock, secondsLeft } from "./clock.js";
import { describe, show } from "./errors.js";
import { ResponseTimes, duration, metresBetween, percentile } from "./figures.js";
import { language, say, setLanguage, words, type Language } from "./i18n.js";
import { CityMap, MODE_COLOURS, PRIORITY_COLOURS, STATUS_COLOURS } from "./map.js";
import { forgetPhotos, photoStrip } from "./photos.js";
import { qrSvg, signInLink } from "./qr.js";

/** The token lives in this tab's session storage only: never in a URL. */
const TOKEN_KEY = "pingji.token";
const LANGUAGE_KEY = "pingji.language";
/** Events kept for the feed (filtered on the page). */
const FEED_KEPT = 400;
const FEED_SHOWN = 60;
/** Events read back when the page opens: timelines and figures start from them. */
const REPLAY_ON_OPEN = 2000n;
const RETRY_MAX_S = 30;
/** How often the dispatcher's clock is asked again. */
const CLOCK_EVERY_MS = 60_000;
/** Names shown per call-up in the roll-call. */
const ROLLCALL_NAMES = 30;
const CATEGORIES = ["medical", "fire", "flood", "rescue", "evacuation", "elder_care", "power_outage", "sandbags", "public_health", "inspection"];
const SKILLS = ["first_aid", "elder_care", "rescue", "electrician", "driving", "counselling", "translation", "firefighting", "nursing", "plumbing"];
const CALLUP_ROLES = [Role.REGISTERED_MEMBER, Role.SUNK_CADRE, Role.VOLUNTEER, Role.COMMUNITY_WORKER, Role.GRID_LEADER, Role.BUILDING_LEADER, Role.UNIT_LEADER, Role.NEW_EMPLOYMENT, Role.PROPERTY_STAFF, Role.OWNERS_COMMITTEE];
const MODES = [Mode.NORMAL, Mode.EMERGENCY_IV, Mode.EMERGENCY_III, Mode.EMERGENCY_II, Mode.EMERGENCY_I];
/** Reasons that end the session: the token no longer works. */
const TOKEN_ENDED = new Set(["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_MISSING"]);
const ENDED = new Set([IncidentStatus.CANCELLED, IncidentStatus.CLOSED, IncidentStatus.MERGED, IncidentStatus.REJECTED]);
const NEEDS_PEOPLE = new Set([IncidentStatus.WAITING, IncidentStatus.OFFERED, IncidentStatus.STAFFED]);
/** Kinds after which an incident is off the map. */
const ENDING_KINDS = new Set(["report_merged", "report_rejected", "incident_closed", "incident_cancelled"]);
/** How much older than the list of open incidents an event may be and still be about one the list missed. */
const LIST_MARGIN_MS = 60_000;
const CALLUP_KINDS = new Set(["callup_issued", "checked_in", "callup_deadline_passed", "callup_stood_down"]);
const MESSAGE_KINDS = new Set(["message_sent", "message_replied", "message_read"]);
/** Messages listed, the newest first. */
const MESSAGES_SHOWN = 20;
const PLAN_KINDS = new Set(["plan_activated", "plan_deactivated", "plans_imported"]);

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
}

function make<K extends keyof HTMLElementTagNameMap>(name: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(name);
  if (text !== "") {
    node.textContent = text;
  }
  if (className !== "") {
    node.className = className;
  }
  return node;
}

/** Redraws `container` and gives the focus back to the control that had it
 * (found again by its data-focus-key): the lists are redrawn as changes
 * arrive, and a keyboard user must not lose their place. */
function keepingFocus(container: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && container.contains(active) ? active.dataset.focusKey : undefined;
  render();
  if (key) {
    container.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
  }
}

const authorization: Interceptor = (next) => async (request) => {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    request.header.set("authorization", `Bearer ${token}`);
  }
  return next(request);
};

const client: Client<typeof CommandService> = createClient(
  CommandService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [authorization] }),
);

mountActivity(client);
const duty = mountDuty(authorization, areaName);

/** Suggestions made of received CAP alerts (a commander's). */
const capClient: Client<typeof CapService> = createClient(
  CapService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [authorization] }),
);
let suggestions: CapSuggestion[] = [];

/** Depots and their stock, and the selected incident's supply requests. */
const supplyClient: Client<typeof SupplyService> = createClient(
  SupplyService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [authorization] }),
);
let depots: Depot[] = [];
let supplyRequests: SupplyRequest[] = [];
let supplyRequestsOf = "";
/** Shelters and their occupancy, on the map and in the shelters panel. */
const shelterClient: Client<typeof ShelterService> = createClient(
  ShelterService,
  createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [authorization] }),
);
let shelters: Shelter[] = [];
const SHELTER_KINDS = new Set([
  "shelters_imported",
  "shelter_opened",
  "shelter_closed",
  "evacuation_assigned",
  "arrivals_checked_in",
  "residents_left",
  "places_released",
  "shelter_level_changed",
]);
const SUPPLY_KINDS = new Set([
  "supplies_imported",
  "supplies_requested",
  "supplies_reserved",
  "supplies_dispatched",
  "supplies_delivered",
  "supplies_returned",
  "supply_request_cancelled",
  "stock_low",
  "stock_restored",
  "stock_moved",
  "unit_status_set",
]);
const CAP_KINDS = new Set(["cap_alert_received", "cap_suggestion_approved", "cap_suggestion_dismissed"]);

/** What is open now: ended when logging out. */
let session: AbortController | null = null;
let role = OperatorRole.UNSPECIFIED;
let operatorName = "";
let cityMap: CityMap | null = null;
const feed: Event[] = [];
/** Events about each open incident, oldest first. */
const timelines = new Map<string, Event[]>();
const TIMELINE_LENGTH = 200;
/** Whether an incident's timeline starts with its report (else earlier events were before the replay). */
const reportSeen = new Set<string>();
/** Incidents whose first events the journal no longer holds (its retention limit). */
const timelineCut = new Set<string>();
/** Incidents whose timeline is being read from the journal. */
const timelineReading = new Set<string>();
/** Field reports awaiting triage: the open incidents each may repeat. */
const triageSuggestions = new Map<string, string[]>();
/** The incident and the person whose details show. */
let selected: string | null = null;
/** The selected incident once it ended (closed with its completions'
 * photos, say): off the map, its panel stays until another is chosen. */
let endedSelected: Incident | null = null;
let selectedPerson: string | null = null;
let areas = new Map<string, Area>();
/** Areas in the order of the tree (a parent, then its children), for choices. */
let areaOrder: Area[] = [];
/** The areas each incident lies in (grid up to district), for the feed's filter. */
const incidentPlaces = new Map<string, string[]>();
let plans: Plan[] = [];
let activations: PlanActivation[] = [];
let callups: Callup[] = [];
let messages: OperatorMessage[] = [];
/** A replay's state (dispatcher --replay), when the page shows one, and when it was read. */
let replay: ReplayState | null = null;
let replayReadAt = 0;
/** Whether the dispatcher said it replays a journal or serves its own. */
let replayAsked: "unknown" | "replay" | "live" = "unknown";
const REPLAY_SPEEDS = [1, 10, 60, 120, 600, 3600];
const REPLAY_SKIP_MS = 5 * 60 * 1000;
/** Grids below their emergency minimum: available and minimum. */
const shortGrids = new Map<string, { available: number; minimum: number }>();
/**
 * People in danger on scene: missed safety check-ins (by person, until they
 * check in or their task ends) and help calls (求助, by their incident, until
 * it ends), with the person and the time.
 */
const safetyAlerts = new Map<string, { kind: "missed" | "help"; agentId: string; incidentId: string; miss: number; welfareId: string; atMs: bigint }>();
let times = new ResponseTimes();
/** When the open incidents were listed (the dispatcher's clock). */
let listedAtMs = 0;
/** Grids whose centroid is within 15 minutes' walk of a service centre, of all grids (Coverage). */
let circle = { within: 0, grids: 0 };

function applyLanguage(): void {
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
  document.title = say("title");
  for (const node of document.querySelectorAll<HTMLElement>("[data-t]")) {
    const key = node.dataset.t as Parameters<typeof say>[0];
    node.textContent = say(key);
  }
  for (const node of document.querySelectorAll<HTMLElement>("[data-label]")) {
    const key = node.dataset.label as Parameters<typeof say>[0];
    node.setAttribute("aria-label", say(key));
    node.title = say(key);
  }
  const toggle = byId<HTMLButtonElement>("language");
  toggle.textContent = language() === "zh" ? "English" : "中文";
  toggle.lang = language() === "zh" ? "en" : "zh-CN";
  byId("map").setAttribute("aria-label", say("mapLabel"));
  byId("legend").setAttribute("aria-label", say("legend"));
  fillChoices();
  fillAreaChoices();
  fillPlanChoices();
  drawLegend();
  drawWhoAmI();
  drawAll();
  drawMapHelp();
}

function fillChoices(): void {
  const category = byId<HTMLSelectElement>("category");
  const chosenCategory = category.value || CATEGORIES[0];
  category.replaceChildren(...CATEGORIES.map((name) => new Option(words().categories[name] ?? name, name)));
  category.value = chosenCategory;
  for (const id of ["priority", "triage-priority"]) {
    const priority = byId<HTMLSelectElement>(id);
    const chosenPriority = priority.value || "2";
    priority.replaceChildren(...[1, 2, 3, 4].map((level) => new Option(words().priorities[level], String(level))));
    priority.value = chosenPriority;
  }
  const mode = byId<HTMLSelectElement>("mode-mode");
  const chosenMode = mode.value || String(Mode.EMERGENCY_I);
  mode.replaceChildren(...MODES.map((value) => new Option(words().modes[value], String(value))));
  mode.value = chosenMode;
  fillBoxes("skills", "skill", SKILLS.map((skill) => [skill, words().skillNames[skill] ?? skill]));
  fillBoxes("callup-roles", "role", CALLUP_ROLES.map((value) => [String(value), words().agentRoles[value] ?? String(value)]));
  const toKind = byId<HTMLSelectElement>("message-to-kind");
  const chosenToKind = toKind.value || "person";
  toKind.replaceChildren(
    new Option(say("messageToPerson"), "person"),
    new Option(say("messageToIncident"), "incident"),
    new Option(say("messageToArea"), "area"),
  );
  toKind.value = chosenToKind;
  const kind = byId<HTMLSelectElement>("filter-kind");
  const chosenKind = kind.value;
  kind.replaceChildren(new Option(say("all"), ""), ...Object.entries(words().kinds).map(([name, text]) => new Option(text, name)));
  kind.value = chosenKind;
}

/** Check boxes in `containerId`, keeping which were checked. */
function fillBoxes(containerId: string, name: string, choices: [string, string][]): void {
  const container = byId(containerId);
  const checked = new Set([...container.querySelectorAll<HTMLInputElement>("input:checked")].map((input) => input.value));
  container.replaceChildren(
    ...choices.map(([value, text]) => {
      const label = make("label");
      const box = make("input");
      box.type = "checkbox";
      box.name = name;
      box.value = value;
      box.checked = checked.has(value);
      label.append(box, text);
      return label;
    }),
  );
}

function checkedValues(containerId: string): string[] {
  return [...byId(containerId).querySelectorAll<HTMLInputElement>("input:checked")].map((input) => input.value);
}

function areaName(id: string): string {
  return areas.get(id)?.name || id;
}

/** The area and the areas above it. */
function ancestry(id: string): string[] {
  const found: string[] = [];
  let current = areas.get(id);
  while (current && found.length < 10) {
    found.push(current.id);
    current = areas.get(current.parentId);
  }
  return found;
}

function fillAreaChoices(): void {
  const option = (area: Area): HTMLOptionElement => {
    const depth = Math.max(0, area.level - AreaLevel.CITY);
    return new Option(`${"\u3000".repeat(depth)}${area.name || area.id}`, area.id);
  };
  for (const id of ["mode-area", "plan-area", "callup-area"]) {
    const select = byId<HTMLSelectElement>(id);
    const chosen = select.value;
    select.replaceChildren(...areaOrder.map(option));
    if (chosen !== "") {
      select.value = chosen;
    }
  }
  const filter = byId<HTMLSelectElement>("filter-area");
  const chosenFilter = filter.value;
  filter.replaceChildren(new Option(say("all"), ""), ...areaOrder.filter((area) => area.level <= AreaLevel.COMMUNITY).map(option));
  filter.value = chosenFilter;
}

function fillPlanChoices(): void {
  const select = byId<HTMLSelectElement>("plan-plan");
  const chosen = select.value;
  if (plans.length === 0) {
    select.replaceChildren(new Option(say("noPlans"), ""));
  } else {
    select.replaceChildren(...plans.map((plan) => new Option(`${plan.name || plan.id} · ${words().modes[plan.grade] ?? ""}`, plan.id)));
    if (chosen !== "") {
      select.value = chosen;
    }
  }
  byId<HTMLButtonElement>("plan-button").disabled = plans.length === 0;
}

function drawLegend(): void {
  const entries: [string, string, string][] = [
    [MODE_COLOURS[1], words().modes[1], "swatch"],
    [MODE_COLOURS[2], words().modes[2], "swatch"],
    [MODE_COLOURS[3], words().modes[3], "swatch"],
    [MODE_COLOURS[4], words().modes[4], "swatch"],
    [MODE_COLOURS[5], words().modes[5], "swatch"],
    [PRIORITY_COLOURS[1], `${words().priority} 1`, "swatch dot"],
    [PRIORITY_COLOURS[2], `${words().priority} 2`, "swatch dot"],
    [PRIORITY_COLOURS[3], `${words().priority} 3`, "swatch dot"],
    [PRIORITY_COLOURS[4], `${words().priority} 4`, "swatch dot"],
    [STATUS_COLOURS[AgentStatus.AVAILABLE], words().statuses[AgentStatus.AVAILABLE], "swatch dot"],
    [STATUS_COLOURS[AgentStatus.BUSY], words().statuses[AgentStatus.BUSY], "swatch dot"],
    [STATUS_COLOURS[AgentStatus.AVAILABLE], say("awayReachable"), "swatch dot away-swatch"],
    ["", say("offerLine"), "line dashed"],
    ["", say("assignmentLine"), "line"],
    ["", words().serviceCentre, "swatch centre-swatch"],
    ["", say("shortGrids"), "swatch short-swatch"],
  ];
  byId("legend").replaceChildren(
    ...entries.map(([colour, text, kind]) => {
      const item = make("li");
      const swatch = make("span", "", kind);
      if (colour !== "") {
        swatch.style.backgroundColor = colour;
      }
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, text);
      return item;
    }),
  );
}

function drawMapHelp(): void {
  byId("map-help").textContent = [say("mapHelp"), mayCreate() ? say("mapHelpCreate") : "", say("mapHelpZoom")].filter((part) => part !== "").join(" ");
}

function drawWhoAmI(): void {
  const whoami = byId("whoami");
  whoami.textContent = operatorName === "" ? "" : `${operatorName} · ${say("role")}: ${words().roles[role] ?? ""}`;
  whoami.dataset.role = OperatorRole[role] ?? "";
}

function drawAll(): void {
  drawFigures();
  drawIncidents();
  drawPerson();
  drawPlans();
  drawCallups();
  drawMessages();
  drawFeed();
}

function isAvailable(agent: { status: AgentStatus; currentIncidentId: string; connected: boolean }): boolean {
  return agent.status === AgentStatus.AVAILABLE && agent.currentIncidentId === "";
}

function drawFigures(): void {
  const open = [...(cityMap?.incidents.values() ?? [])];
  const people = [...(cityMap?.people.values() ?? [])];
  const needing = open.filter((incident) => NEEDS_PEOPLE.has(incident.status));
  const staffed = needing.filter((incident) => incident.status === IncidentStatus.STAFFED).length;
  const openCallups = callups.filter((callup) => callup.endedAtMs === 0n);
  const called = openCallups.reduce((sum, callup) => sum + callup.people.length, 0);
  const checkedIn = openCallups.reduce((sum, callup) => sum + callup.checkedIn, 0);
  const pair = (samples: number[]): string => `${duration(percentile(samples, 0.5))} / ${duration(percentile(samples, 0.9))}`;
  const figures: [string, string, string][] = [
    [say("openIncidents"), String(open.length), "open"],
    ...[1, 2, 3, 4].map((level): [string, string, string] => [say("priorityN", { n: level }), String(open.filter((incident) => incident.priority === level).length), `p${level}`]),
    [say("available"), String(people.filter(isAvailable).length), "available"],
    [say("staffedShare"), needing.length === 0 ? "—" : `${Math.round((100 * staffed) / needing.length)}%`, "staffed"],
    [say("toTriage"), String(open.filter((incident) => incident.status === IncidentStatus.REPORTED).length), "reports"],
    [say("activePlans"), String(activations.filter((activation) => activation.endedAtMs === 0n).length), "plans"],
    [say("acceptTime"), pair(times.acceptMs), "accept"],
    [say("arriveTime"), pair(times.arriveMs), "arrive"],
    [say("rollCall"), called === 0 ? "—" : `${checkedIn} / ${called}`, "rollcall"],
    [say("circleShare"), circle.grids === 0 ? "—" : `${Math.round((100 * circle.within) / circle.grids)}%`, "circle"],
  ];
  byId("figures").replaceChildren(
    ...figures.map(([name, value, key]) => {
      const cell = make("div");
      cell.dataset.figure = key;
      cell.append(make("dt", name), make("dd", value));
      return cell;
    }),
  );
  // People available per district, from where their positions place them.
  const perDistrict = new Map<string, number>();
  for (const agent of people) {
    if (!isAvailable(agent) || agent.gridId === "") {
      continue;
    }
    const district = ancestry(agent.gridId).find((id) => areas.get(id)?.level === AreaLevel.DISTRICT);
    if (district) {
      perDistrict.set(district, (perDistrict.get(district) ?? 0) + 1);
    }
  }
  const districts = areaOrder.filter((area) => area.level === AreaLevel.DISTRICT);
  byId("per-area").replaceChildren(
    ...districts.map((district) => {
      const item = make("li");
      item.dataset.areaId = district.id;
      item.append(make("span", district.name || district.id), make("strong", String(perDistrict.get(district.id) ?? 0)));
      return item;
    }),
  );
  const short = [...shortGrids.entries()].sort(([a], [b]) => a.localeCompare(b));
  byId("short-grids").replaceChildren(
    ...(short.length === 0
      ? [make("li", say("noShortGrids"), "empty")]
      : short.map(([grid, figures]) => {
          const item = make("li", say("shortGridLine", { grid: areaName(grid), available: figures.available, minimum: figures.minimum }));
          item.dataset.gridId = grid;
          return item;
        })),
  );
}

/** What an event changes in the safety alerts. */
function takeSafety(event: Event): void {
  const body = event.body;
  switch (body.case) {
    case "safetyCheckMissed":
      safetyAlerts.set(`missed:${body.value.agentId}`, {
        kind: "missed",
        agentId: body.value.agentId,
        incidentId: body.value.incidentId,
        miss: body.value.miss,
        welfareId: body.value.welfareIncidentId,
        atMs: event.atMs,
      });
      break;
    case "helpRequested":
      safetyAlerts.set(`help:${body.value.incidentId}`, {
        kind: "help",
        agentId: body.value.agentId,
        incidentId: body.value.incidentId,
        miss: 0,
        welfareId: "",
        atMs: event.atMs,
      });
      break;
    case "safetyCheckIn":
    case "assignmentCompleted":
      safetyAlerts.delete(`missed:${body.value.agentId}`);
      break;
    case "incidentClosed":
    case "incidentCancelled":
      safetyAlerts.delete(`help:${body.value.incidentId}`);
      for (const [key, alert] of safetyAlerts) {
        if (alert.incidentId === body.value.incidentId) {
          safetyAlerts.delete(key);
        }
      }
      break;
    default:
      return;
  }
  drawSafetyAlerts();
}

function drawSafetyAlerts(): void {
  const alerts = [...safetyAlerts.values()].sort((a, b) => Number(b.atMs - a.atMs));
  byId("safety-panel").hidden = alerts.length === 0;
  byId("safety-alerts").replaceChildren(
    ...alerts.map((alert) => {
      const item = make("li");
      item.dataset.kind = alert.kind;
      item.dataset.agentId = alert.agentId;
      const line =
        alert.kind === "help"
          ? say("helpLine", { agent: alert.agentId, incident: alert.incidentId })
          : say("safetyMissedLine", { agent: alert.agentId, miss: alert.miss, incident: alert.incidentId });
      const button = make("button", line);
      button.setAttribute("type", "button");
      const target = alert.welfareId || alert.incidentId;
      button.addEventListener("click", () => select(target));
      item.append(timeOf({ atMs: alert.atMs } as Event), button);
      if (alert.welfareId) {
        item.append(make("span", say("safetyWelfare", { welfare: alert.welfareId }), "welfare"));
      }
      return item;
    }),
  );
}

function drawIncidents(): void {
  keepingFocus(byId("incidents-section"), drawIncidentList);
}

function drawIncidentList(): void {
  const open = [...(cityMap?.incidents.values() ?? [])].sort((a, b) => a.priority - b.priority || a.id.localeCompare(b.id));
  const list = byId("incident-list");
  if (open.length === 0) {
    list.replaceChildren(make("li", say("noIncidents"), "empty"));
  } else {
    list.replaceChildren(
      ...open.map((incident) => {
        const item = make("li");
        const button = make("button");
        button.type = "button";
        button.dataset.incidentId = incident.id;
        button.dataset.focusKey = `incident:${incident.id}`;
        button.setAttribute("aria-pressed", String(incident.id === selected));
        const badge = make("span", `P${incident.priority}`, `priority-badge p${Math.min(4, Math.max(1, incident.priority))}`);
        const what = make("span", `${words().categories[incident.category] ?? incident.category} · ${incident.id} · ${words().incidentStatuses[incident.status] ?? ""}`);
        button.append(badge, what);
        button.addEventListener("click", () => select(incident.id));
        item.append(button);
        return item;
      }),
    );
  }
  drawDetail();
}

interface OfferRow {
  offerId: string;
  agentId: string;
  sentAtMs: number;
  deadlineMs: number;
  distanceM: number;
  flat: boolean;
  outcome: "open" | "accepted" | "declined" | "expired" | "withdrawn";
  reason: string;
}

/** The incident's offers and their answers, from its timeline and its open offers. */
function offerRows(incident: Incident): OfferRow[] {
  const rows = new Map<string, OfferRow>();
  const row = (offerId: string, agentId: string): OfferRow => {
    const found = rows.get(offerId) ?? { offerId, agentId, sentAtMs: 0, deadlineMs: 0, distanceM: 0, flat: false, outcome: "open", reason: "" };
    rows.set(offerId, found);
    return found;
  };
  for (const event of timelines.get(incident.id) ?? []) {
    const body = event.body;
    switch (body.case) {
      case "offerSent": {
        const found = row(body.value.offerId, body.value.agentId);
        found.sentAtMs = Number(body.value.sentAtMs);
        found.deadlineMs = Number(body.value.deadlineMs);
        found.distanceM = body.value.distanceM;
        found.flat = body.value.flat;
        break;
      }
      case "assigned":
        row(body.value.offerId, body.value.agentId).outcome = "accepted";
        break;
      case "offerDeclined": {
        const found = row(body.value.offerId, body.value.agentId);
        found.outcome = "declined";
        found.reason = body.value.reason;
        break;
      }
      case "offerTimedOut":
        row(body.value.offerId, body.value.agentId).outcome = "expired";
        break;
      case "offerWithdrawn":
        row(body.value.offerId, body.value.agentId).outcome = "withdrawn";
        break;
    }
  }
  // Offers sent before the events the page has.
  for (const offer of incident.openOffers) {
    const found = row(offer.offerId, offer.agentId);
    found.deadlineMs = Number(offer.deadlineMs);
    found.distanceM = found.distanceM || offer.distanceM;
  }
  for (const assignment of incident.assignments) {
    const found = row(assignment.offerId, assignment.agentId);
    found.outcome = "accepted";
    found.sentAtMs = found.sentAtMs || Number(assignment.assignedAtMs);
  }
  return [...rows.values()].sort((a, b) => a.sentAtMs - b.sentAtMs);
}

function personButton(agentId: string): HTMLButtonElement {
  const button = make("button", cityMap?.people.get(agentId)?.spec?.name || agentId, "link-button");
  button.type = "button";
  button.dataset.agentId = agentId;
  button.dataset.focusKey = `person:${agentId}`;
  button.addEventListener("click", () => selectPersonById(agentId));
  return button;
}

function drawDetail(): void {
  const detail = byId("incident-detail");
  const incident = selected === null ? undefined : (cityMap?.incidents.get(selected) ?? (endedSelected?.id === selected ? endedSelected : undefined));
  if (!incident) {
    detail.hidden = true;
    return;
  }
  detail.hidden = false;
  detail.dataset.incidentId = incident.id;
  byId("detail-title").textContent = `${incident.id} · ${words().categories[incident.category] ?? incident.category} · P${incident.priority}`;
  const skills = incident.requiredSkills.map((skill) => words().skillNames[skill] ?? skill).join("、");
  const facts: [string, string][] = [
    [say("factStatus"), words().incidentStatuses[incident.status] ?? ""],
    [say("factNeeds"), `${incident.headcount}${skills ? ` · ${skills}` : ""}`],
    [say("factPlace"), incident.gridId ? areaName(incident.gridId) : "—"],
    [say("factMode"), words().modes[incident.mode] ?? ""],
    [say("factReporter"), incident.reportedByAgent || incident.reportedBy || "—"],
  ];
  if (incident.reportText !== "" || incident.description !== "") {
    facts.push([say("factText"), incident.reportText || incident.description]);
  }
  if (incident.unstaffable) {
    facts.push([say("factUnstaffable"), `${incident.unstaffable.possible} / ${incident.unstaffable.needed}`]);
  }
  const factNodes = facts.flatMap(([term, value]) => [make("dt", term), make("dd", value)]);
  // The report's photos and those sent with completions (never for a viewer).
  const photoRefs = incidentPhotos(incident);
  if (mayCreate() && photoRefs.length > 0) {
    const photos = make("dd");
    photos.append(photosOf(photoRefs, `incident:${incident.id}`));
    factNodes.push(make("dt", say("factPhotos")), photos);
  }
  byId("detail-facts").replaceChildren(...factNodes);
  drawOffers(incident);
  drawSupplyRequests(incident.id);
  const timeline = timelines.get(incident.id) ?? [];
  const items = timeline.map((event) => {
    const item = make("li");
    item.dataset.kind = event.kind;
    item.append(timeOf(event), make("span", describeEvent(event)));
    const photoRefs = eventPhotos(event);
    if (mayCreate() && photoRefs.length > 0) {
      item.append(photosOf(photoRefs, `event:${event.seq}`));
    }
    return item;
  });
  if (!reportSeen.has(incident.id)) {
    items.unshift(make("li", say(timelineCut.has(incident.id) ? "timelineCut" : "noEarlier"), "empty"));
  }
  byId("detail-timeline").replaceChildren(...items);
  byId("end-form").hidden = !mayCreate() || incident.status === IncidentStatus.REPORTED || ENDED.has(incident.status);
  byId("triage-form").hidden = !mayCreate() || incident.status !== IncidentStatus.REPORTED;
  if (incident.status === IncidentStatus.REPORTED) {
    const into = byId<HTMLSelectElement>("triage-merge-into");
    const chosen = into.value;
    const others = [...(cityMap?.incidents.values() ?? [])].filter((other) => other.id !== incident.id && other.status !== IncidentStatus.REPORTED);
    // Filled again only when the choices change: not under an open list.
    // Possible duplicates (FindDuplicates) first, marked, and chosen unless
    // the operator chose another.
    const suggested = triageSuggestions.get(incident.id) ?? [];
    others.sort((a, b) => Number(suggested.includes(b.id)) - Number(suggested.includes(a.id)));
    const choices = `${language()}:${suggested.join(",")}:${others.map((other) => other.id).join(",")}`;
    if (into.dataset.choices !== choices) {
      into.dataset.choices = choices;
      const label = (other: Incident): string =>
        `${other.id} · ${words().categories[other.category] ?? other.category}${suggested.includes(other.id) ? ` · ${say("possibleDuplicate")}` : ""}`;
      into.replaceChildren(new Option("—", ""), ...others.map((other) => new Option(label(other), other.id)));
      into.value = chosen !== "" ? chosen : (suggested.find((id) => others.some((other) => other.id === id)) ?? "");
    }
  }
}

/** An incident's photos: its field report's and those sent with completions. */
function incidentPhotos(incident: Incident): string[] {
  // With the photos of the field reports merged into it (one incident, every report's photos).
  const refs = [incident.photoRef, ...incident.photoRefs, ...incident.mergedPhotoRefs, ...incident.assignments.flatMap((assignment) => assignment.photoRefs)];
  return [...new Set(refs.filter((photoRef) => photoRef !== ""))];
}

/** The photos an event came with (a field report, a completion). */
function eventPhotos(event: Event): string[] {
  const body = event.body;
  switch (body.case) {
    case "fieldReported":
      return [...new Set([body.value.photoRef, ...body.value.photoRefs].filter((photoRef) => photoRef !== ""))];
    case "assignmentCompleted":
      return body.value.photoRefs;
    default:
      return [];
  }
}

/** Small photos that open large, read with GetPhoto (dispatcher and above). */
function photosOf(photoRefs: string[], focusKey: string): HTMLElement {
  const signal = session?.signal;
  return photoStrip(
    photoRefs,
    async (photoRef) => await client.getPhoto({ photoRef }, { signal }),
    openPhoto,
    focusKey,
    {
      label: (n, count) => say("photoLabel", { n, count }),
      failed: (message) => say("photoFailed", { message }),
      notDrawn: say("photoNotDrawn"),
    },
  );
}

function openPhoto(photoRef: string, full: string): void {
  const dialog = byId<HTMLDialogElement>("photo-dialog");
  const large = byId<HTMLImageElement>("photo-large");
  large.src = full;
  large.alt = say("photoTitle");
  dialog.dataset.photoRef = photoRef;
  dialog.showModal();
}

/** Offers with their answers, and the people on their way with the distance left. */
function drawOffers(incident: Incident): void {
  const rows = offerRows(incident);
  const list = byId("detail-offers");
  if (rows.length === 0) {
    list.replaceChildren(make("li", say("noOffers"), "empty"));
    return;
  }
  list.replaceChildren(
    ...rows.map((row) => {
      const item = make("li");
      item.dataset.offerId = row.offerId;
      item.dataset.agentId = row.agentId;
      item.dataset.outcome = row.outcome;
      const outcomes: Record<OfferRow["outcome"], string> = {
        open: say("outcomeOpen", { s: secondsLeft(row.deadlineMs) }),
        accepted: say("outcomeAccepted"),
        declined: say("outcomeDeclined") + (row.reason ? `（${row.reason}）` : ""),
        expired: say("outcomeExpired"),
        withdrawn: say("outcomeWithdrawn"),
      };
      const state = make("span", outcomes[row.outcome], `outcome ${row.outcome}`);
      if (row.outcome === "open") {
        state.dataset.deadline = String(row.deadlineMs);
      }
      item.append(personButton(row.agentId), state);
      if (row.flat) {
        item.append(make("span", say("flat"), "tag"));
      }
      const assignment = incident.assignments.find((found) => found.offerId === row.offerId);
      if (assignment) {
        item.append(route(incident, assignment.agentId, row.distanceM, assignment.arrivedAtMs > 0n, assignment.completedAtMs > 0n));
      }
      return item;
    }),
  );
}

/** Where the assigned person is on their way: the distance left from their live position. */
function route(incident: Incident, agentId: string, startM: number, arrived: boolean, completed: boolean): HTMLElement {
  const box = make("div", "", "route");
  if (completed || arrived) {
    box.textContent = completed ? say("completed") : say("arrived");
    box.dataset.left = "0";
    return box;
  }
  const where = cityMap?.people.get(agentId)?.location;
  if (!where || !incident.location) {
    return box;
  }
  const leftM = metresBetween(where, incident.location);
  box.dataset.left = leftM.toFixed(0);
  const bar = make("progress");
  bar.max = 1;
  bar.value = startM > 0 ? Math.min(1, Math.max(0, 1 - leftM / startM)) : 0;
  bar.setAttribute("aria-label", say("progressLabel", { agent: agentId }));
  box.append(make("span", say("onTheWay", { km: (leftM / 1000).toFixed(2) })), bar);
  return box;
}

function timeOf(event: Event): HTMLTimeElement {
  const time = make("time");
  const at = new Date(Number(event.atMs));
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  return time;
}

/** One line for an event: its kind, who and what. */
function describeEvent(event: Event): string {
  const parts = [words().kinds[event.kind] ?? event.kind];
  const body = event.body;
  switch (body.case) {
    case "offerSent":
      parts.push(body.value.agentId, `${(body.value.distanceM / 1000).toFixed(1)} km`);
      if (body.value.flat) {
        parts.push(say("flat"));
      }
      break;
    case "offerDeclined":
      parts.push(body.value.agentId);
      if (body.value.reason) {
        parts.push(body.value.reason);
      }
      break;
    case "modeSwitched":
      parts.push(areaName(body.value.areaId), words().modes[body.value.mode] ?? "");
      break;
    case "gridStaffingLow":
      parts.push(say("shortGridLine", { grid: areaName(body.value.gridId), available: body.value.available, minimum: body.value.minimum }));
      break;
    case "reportMerged":
      parts.push(`→ ${body.value.intoIncidentId}`);
      break;
    case "notified":
      // A rung of the escalation ladder (SMS, call): never a phone number.
      parts.push(
        body.value.agentId,
        `${words().noticeChannels[body.value.channel] ?? ""} ${words().noticeOutcomes[body.value.outcome] ?? ""}`.trim(),
        body.value.detail,
      );
      break;
    case "reportRejected":
    case "incidentCancelled":
      parts.push(body.value.reason);
      break;
    case "incidentClosed":
      parts.push(body.value.feedback);
      break;
    case "safetyCheckMissed":
      parts.push(body.value.agentId, `#${body.value.miss}`);
      if (body.value.welfareIncidentId) {
        parts.push(say("safetyWelfare", { welfare: body.value.welfareIncidentId }));
      }
      break;
    case "helpRequested":
      parts.push(body.value.agentId, body.value.text);
      break;
    default: {
      const subject = event.agentId || (event.incidentId ? "" : event.areaId ? areaName(event.areaId) : "");
      if (subject) {
        parts.push(subject);
      }
    }
  }
  if (event.actor.startsWith("operator:")) {
    parts.push(`(${event.actor.slice("operator:".length)})`);
  }
  return parts.filter((part) => part !== "").join(" · ");
}

function select(incidentId: string): void {
  if (endedSelected !== null && endedSelected.id !== incidentId) {
    timelines.delete(endedSelected.id);
    endedSelected = null;
  }
  if (selected !== incidentId) {
    byId("why-result").replaceChildren();
  }
  selected = incidentId;
  const chosen = cityMap?.incidents.get(incidentId);
  if (chosen?.status === IncidentStatus.REPORTED && mayCreate() && !triageSuggestions.has(incidentId)) {
    triageSuggestions.set(incidentId, []);
    void client
      .findDuplicates({ incidentId })
      .then((found) => {
        triageSuggestions.set(incidentId, found.duplicates.flatMap((duplicate) => (duplicate.incident ? [duplicate.incident.id] : [])));
        drawIncidents();
      })
      .catch(() => triageSuggestions.delete(incidentId));
  }
  if (!reportSeen.has(incidentId) && !timelineCut.has(incidentId) && session) {
    void readTimeline(incidentId, session.signal);
  }
  if (session) {
    void readSupplyRequests(incidentId, session.signal).catch((failure) =>
      console.warn(`cannot read the supply requests: ${describe(failure).message}`),
    );
  }
  byId("end-result").replaceChildren();
  drawIncidents();
  byId("incident-detail").scrollIntoView({ block: "nearest" });
}

function selectPersonById(agentId: string): void {
  if (agentId !== selectedPerson) {
    closeSignIn();
  }
  selectedPerson = agentId;
  byId("person-result").replaceChildren();
  drawPerson();
  byId("person-panel").scrollIntoView({ block: "nearest" });
}

function drawPerson(): void {
  keepingFocus(byId("person-panel"), drawPersonFacts);
}

function drawPersonFacts(): void {
  const facts = byId("person-facts");
  byId("sign-in").hidden = true;
  if (selectedPerson === null) {
    facts.hidden = true;
    return;
  }
  const agent = cityMap?.people.get(selectedPerson);
  if (!agent?.spec) {
    facts.hidden = true;
    byId("person-result").textContent = say("noSuchPerson", { id: selectedPerson });
    return;
  }
  facts.hidden = false;
  facts.dataset.agentId = agent.spec.id;
  byId("sign-in").hidden = !mayIssueTokens();
  const shown = agent.currentIncidentId !== "" ? AgentStatus.BUSY : agent.status;
  const rows: [string, string | HTMLElement][] = [
    [say("personTitle"), `${agent.spec.name} · ${agent.spec.id}`],
    [say("personRole"), words().agentRoles[agent.spec.role] ?? ""],
    [say("personSkills"), agent.spec.skills.map((skill) => words().skillNames[skill] ?? skill).join("、") || "—"],
    [say("personStatus"), `${words().statuses[shown] ?? ""} · ${agent.connected ? say("online") : agent.location ? say("awayReachable") : say("offline")}`],
    [say("personGrid"), agent.gridId ? areaName(agent.gridId) : "—"],
    [say("personSeen"), agent.locationAtMs > 0n ? new Date(Number(agent.locationAtMs)).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "—"],
  ];
  if (agent.currentIncidentId !== "") {
    const task = make("button", agent.currentIncidentId, "link-button");
    task.type = "button";
    task.dataset.focusKey = "task";
    const incidentId = agent.currentIncidentId;
    task.addEventListener("click", () => select(incidentId));
    rows.push([say("personTask"), task]);
  } else {
    rows.push([say("personTask"), "—"]);
  }
  facts.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const definition = make("dd");
      definition.append(value);
      return [make("dt", term), definition];
    }),
  );
}

function drawPlans(): void {
  keepingFocus(byId("command-panel"), drawActivations);
}

function drawActivations(): void {
  const open = activations.filter((activation) => activation.endedAtMs === 0n);
  const list = byId("activations");
  if (open.length === 0) {
    list.replaceChildren(make("li", say("noActivations"), "empty"));
    return;
  }
  list.replaceChildren(
    ...open.map((activation) => {
      const item = make("li");
      item.dataset.activationId = activation.id;
      const plan = plans.find((found) => found.id === activation.planId);
      const name = plan?.name || activation.planId;
      item.append(make("span", `${name} · ${areaName(activation.areaId)} · ${activation.incidentIds.length}`));
      if (mayCommand()) {
        const end = make("button", say("planEnd"));
        end.type = "button";
        end.dataset.focusKey = `end:${activation.id}`;
        end.setAttribute("aria-label", say("planEndLabel", { plan: name, area: areaName(activation.areaId) }));
        end.addEventListener("click", () => void endPlan(activation.id));
        item.append(end);
      }
      return item;
    }),
  );
}

function drawCallups(): void {
  const open = callups.filter((callup) => callup.endedAtMs === 0n);
  const list = byId("rollcall");
  if (open.length === 0) {
    list.replaceChildren(make("li", say("noCallups"), "empty"));
    return;
  }
  list.replaceChildren(
    ...open.map((callup) => {
      const item = make("li");
      item.dataset.callupId = callup.id;
      item.dataset.checkedIn = String(callup.checkedIn);
      item.dataset.called = String(callup.people.length);
      const line = make("div", say("rollcallLine", { area: areaName(callup.areaId), checked: callup.checkedIn, total: callup.people.length }));
      const bar = make("progress");
      bar.max = Math.max(1, callup.people.length);
      bar.value = callup.checkedIn;
      bar.setAttribute("aria-label", say("rollcallLabel", { area: areaName(callup.areaId) }));
      const people = make("ul", "", "called");
      // Who checked in first; a long roll-call shows its first names and how many more.
      const ordered = [...callup.people].sort((a, b) => Number(b.checkedInAtMs > 0n) - Number(a.checkedInAtMs > 0n));
      for (const person of ordered.slice(0, ROLLCALL_NAMES)) {
        const entry = make("li", `${person.checkedInAtMs > 0n ? "✓" : "…"} ${person.name || person.agentId}`);
        entry.dataset.agentId = person.agentId;
        entry.dataset.checkedIn = String(person.checkedInAtMs > 0n);
        people.append(entry);
      }
      if (ordered.length > ROLLCALL_NAMES) {
        people.append(make("li", say("more", { n: ordered.length - ROLLCALL_NAMES })));
      }
      item.append(line, bar, people);
      return item;
    }),
  );
}

/** Whether the feed's filters let `event` through. */
function passes(event: Event): boolean {
  const kind = byId<HTMLSelectElement>("filter-kind").value;
  if (kind !== "" && event.kind !== kind) {
    return false;
  }
  const incident = byId<HTMLInputElement>("filter-incident").value.trim();
  if (incident !== "" && event.incidentId !== incident) {
    return false;
  }
  const area = byId<HTMLSelectElement>("filter-area").value;
  if (area === "") {
    return true;
  }
  const places = [
    ...(event.areaId ? ancestry(event.areaId) : []),
    ...(incidentPlaces.get(event.incidentId) ?? []),
    ...(event.agentId ? ancestry(cityMap?.people.get(event.agentId)?.gridId ?? "") : []),
  ];
  return places.includes(area);
}

function drawFeed(): void {
  byId("feed").replaceChildren(
    ...feed
      .filter(passes)
      .slice(0, FEED_SHOWN)
      .map((event) => {
        const item = make("li");
        item.dataset.kind = event.kind;
        const subject = event.incidentId ? `${event.incidentId} · ` : "";
        item.append(timeOf(event), make("span", `${subject}${describeEvent(event)}`));
        return item;
      }),
  );
}

function mayCreate(): boolean {
  return role >= OperatorRole.DISPATCHER;
}

/** Issuing people's tokens (and so their sign-in links) is an admin's. */
function mayIssueTokens(): boolean {
  return role >= OperatorRole.ADMIN;
}

function mayCommand(): boolean {
  return role >= OperatorRole.COMMANDER;
}

function showView(loggedIn: boolean): void {
  byId("login-view").hidden = loggedIn;
  byId("command-view").hidden = !loggedIn;
  byId("logout").hidden = !loggedIn;
  byId("whoami").hidden = !loggedIn;
  byId("wall-button").hidden = !loggedIn;
  if (!loggedIn) {
    document.body.classList.remove("wall");
  }
}

async function logIn(token: string): Promise<void> {
  const error = byId("login-error");
  error.replaceChildren();
  if (token === "") {
    error.textContent = say("tokenEmpty");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const button = byId<HTMLFormElement>("login-form").querySelector("button");
  if (button) {
    button.disabled = true;
  }
  try {
    const operator = await client.whoAmI({});
    role = operator.role;
    operatorName = operator.name;
    byId<HTMLInputElement>("token").value = "";
    await start();
  } catch (failure) {
    sessionStorage.removeItem(TOKEN_KEY);
    show(describe(failure), error);
    showView(false);
    byId<HTMLInputElement>("token").focus();
  } finally {
    if (button) {
      button.disabled = false;
    }
  }
}

function logOut(): void {
  session?.abort();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  role = OperatorRole.UNSPECIFIED;
  operatorName = "";
  feed.length = 0;
  timelines.clear();
  reportSeen.clear();
  timelineCut.clear();
  incidentPlaces.clear();
  shortGrids.clear();
  safetyAlerts.clear();
  plans = [];
  activations = [];
  suggestions = [];
  depots = [];
  shelters = [];
  supplyRequests = [];
  supplyRequestsOf = "";
  callups = [];
  messages = [];
  replay = null;
  replayAsked = "unknown";
  drawReplay();
  times = new ResponseTimes();
  selected = null;
  endedSelected = null;
  selectedPerson = null;
  lastSeq = 0n;
  forgetPhotos();
  forgetDispatcherClock();
  closeSignIn();
  byId<HTMLDialogElement>("photo-dialog").close();
  cityMap?.clearPick();
  cityMap?.people.clear();
  cityMap?.incidents.clear();
  showView(false);
  byId<HTMLInputElement>("token").focus();
}

/** After login: the map, then the live streams. */
async function start(): Promise<void> {
  session?.abort();
  const current = new AbortController();
  session = current;
  byId("create-panel").hidden = !mayCreate();
  byId("command-panel").hidden = !mayCommand();
  byId("cap-panel").hidden = true;
  byId("callup-form").hidden = !mayCommand();
  byId("message-form").hidden = !mayCreate();
  showView(true);
  drawWhoAmI();
  drawMapHelp();
  const map = cityMap ?? new CityMap(byId("map") as unknown as SVGSVGElement, { pick: pickPlace, selectIncident: select, selectPerson: selectPersonById });
  cityMap = map;
  byId("map").classList.toggle("may-create", mayCreate());
  await readClock(current.signal);
  const listed = await client.listAreas({ withGeometry: true }, { signal: current.signal });
  takeAreas(listed.areas);
  map.setAreas(listed.areas, listed.serviceCentres);
  // The deployment's own tile server, when it has one (the dispatcher puts
  // its URL in the page and its origin, only, in the page's img-src).
  const tiles = document.querySelector<HTMLMetaElement>('meta[name="pingji-tiles"]')?.content ?? "";
  map.setTiles(tiles);
  byId("map").classList.toggle("with-tiles", tiles !== "");
  byId("map").dataset.areas = String(listed.areas.length);
  listedAtMs = dispatcherNow();
  const open = await client.listIncidents({ openOnly: true }, { signal: current.signal });
  map.incidents = new Map(open.incidents.map((incident) => [incident.id, incident]));
  for (const incident of open.incidents) {
    placeOf(incident);
    times.knowReported(incident.id, Number(incident.reportedAtMs));
  }
  map.scheduleDraw();
  await Promise.all([
    readCoverage(map, current.signal),
    readPlans(current.signal),
    readSuggestions(current.signal),
    readSupplies(current.signal),
    readShelters(current.signal),
    readCallups(current.signal),
    readMessages(current.signal),
    readReplay(current.signal),
  ]);
  setWall(window.location.hash === "#wall");
  drawAll();
  void keepWatching("events", current.signal, () => watchEvents(map, current.signal));
  void followClock(current.signal);
  void keepWatching("people", current.signal, () => watchPeople(map, current.signal));
}

function takeAreas(listed: Area[]): void {
  areas = new Map(listed.map((area) => [area.id, area]));
  const children = new Map<string, Area[]>();
  for (const area of listed) {
    const siblings = children.get(area.parentId) ?? [];
    siblings.push(area);
    children.set(area.parentId, siblings);
  }
  areaOrder = [];
  const visit = (parentId: string, depth: number): void => {
    const below = (children.get(parentId) ?? []).sort((a, b) => a.id.localeCompare(b.id));
    for (const area of below) {
      areaOrder.push(area);
      if (depth < 8) {
        visit(area.id, depth + 1);
      }
    }
  };
  const roots = listed.filter((area) => !areas.has(area.parentId)).map((area) => area.parentId);
  for (const root of new Set(roots)) {
    visit(root, 0);
  }
  fillAreaChoices();
}

function placeOf(incident: Incident): void {
  incidentPlaces.set(incident.id, [incident.gridId, incident.communityId, incident.streetId, incident.districtId].filter((id) => id !== ""));
}

/** The dispatcher's time and speed (GetClock), which countdowns follow. */
async function readClock(signal: AbortSignal): Promise<void> {
  const askedAtMs = performance.now();
  const clock = await client.getClock({}, { signal });
  followDispatcherClock(Number(clock.nowMs), clock.speed, askedAtMs, performance.now());
  document.body.dataset.clockSpeed = String(clock.speed);
}

/** Asks the dispatcher's clock again now and then: the two clocks drift apart. */
async function followClock(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, CLOCK_EVERY_MS));
    try {
      await readClock(signal);
    } catch {
      // A lost connection: the streams say so; the last known clock runs on.
    }
  }
}

async function readCoverage(map: CityMap, signal: AbortSignal): Promise<void> {
  try {
    const coverage = await client.coverage({}, { signal });
    map.setWalkingSpeed(coverage.walkMps);
    circle = {
      within: coverage.communities.reduce((sum, community) => sum + community.gridsWithin15Min, 0),
      grids: coverage.communities.reduce((sum, community) => sum + community.grids, 0),
    };
    shortGrids.clear();
    for (const grid of coverage.grids) {
      if (grid.below) {
        shortGrids.set(grid.gridId, { available: grid.available, minimum: grid.minimum });
      }
    }
    map.setShortStaffed(new Set(shortGrids.keys()));
  } catch (failure) {
    console.warn(`cannot read the coverage: ${describe(failure).message}`);
  }
}

/** Depots with their stock, on the map and in the supplies panel; the
 * selected incident's requests again. */
/** Shelters with their occupancy, on the map and in the shelters panel. */
async function readShelters(signal: AbortSignal): Promise<void> {
  try {
    shelters = (await shelterClient.listShelters({ areaId: "", openOnly: false }, { signal })).shelters;
    cityMap?.setShelters(shelters);
    drawShelters();
  } catch (failure) {
    console.warn(`cannot read the shelters: ${describe(failure).message}`);
  }
}

function drawShelters(): void {
  const list = byId("shelter-list");
  if (shelters.length === 0) {
    list.replaceChildren(make("li", say("noShelters")));
    return;
  }
  list.replaceChildren(
    ...shelters.map((shelter) => {
      const item = make("li");
      item.dataset.shelterId = shelter.id;
      const state = shelter.open ? words().shelterOpen : words().shelterClosed;
      const alert = words().shelterLevels[shelter.level] ?? "";
      const alertClass = shelter.level === 3 ? "full" : shelter.level === 2 ? "nearly-full" : "";
      item.append(make("strong", shelter.name), make("span", ` · ${state}`, shelter.open ? "" : "closed"));
      if (alert) {
        item.append(make("span", ` · ${alert}`, alertClass));
      }
      const occupancy = say("shelterIn", {
        in: String(shelter.occupied),
        reserved: String(shelter.reserved),
        capacity: String(shelter.capacity),
      });
      item.append(make("div", occupancy));
      const bar = make("div", "", "bar");
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", occupancy);
      const share = (count: number): string => `${shelter.capacity > 0 ? Math.min(100, (100 * count) / shelter.capacity) : 0}%`;
      const inside = make("span", "", "in");
      inside.style.width = share(shelter.occupied);
      const reserved = make("span", "", "reserved");
      reserved.style.left = share(shelter.occupied);
      reserved.style.width = share(shelter.reserved);
      bar.append(inside, reserved);
      item.append(bar);
      return item;
    }),
  );
}

async function readSupplies(signal: AbortSignal): Promise<void> {
  try {
    depots = (await supplyClient.listDepots({ areaId: "" }, { signal })).depots;
    cityMap?.setDepots(depots);
    drawDepots();
    if (selected !== null) {
      await readSupplyRequests(selected, signal);
    }
  } catch (failure) {
    console.warn(`cannot read the supplies: ${describe(failure).message}`);
  }
}

function drawDepots(): void {
  const list = byId("depot-list");
  if (depots.length === 0) {
    list.replaceChildren(make("li", say("noDepots")));
    return;
  }
  list.replaceChildren(
    ...depots.map((depot) => {
      const item = make("li");
      item.dataset.depotId = depot.id;
      item.append(make("strong", depot.name), make("span", ` · ${depot.areaId ? areaName(depot.areaId) : "—"}`));
      const stock = make("div", "", "stock");
      for (const held of depot.stock) {
        const low = held.low ? ` (${say("lowStock")})` : "";
        stock.append(make("span", `${held.itemId} ${held.available}/${held.onHand}${low}`, held.low ? "low" : ""));
      }
      const units = new Map<string, number>();
      for (const unit of depot.units) {
        units.set(unit.itemId, (units.get(unit.itemId) ?? 0) + 1);
      }
      for (const [itemId, count] of units) {
        stock.append(make("span", `${itemId} ×${count}`));
      }
      item.append(stock);
      return item;
    }),
  );
}

async function readSupplyRequests(incidentId: string, signal: AbortSignal): Promise<void> {
  const listed = await supplyClient.listSupplyRequests({ incidentId, openOnly: false }, { signal });
  supplyRequests = listed.requests;
  supplyRequestsOf = incidentId;
  drawSupplyRequests(incidentId);
}

function drawSupplyRequests(incidentId: string): void {
  const shown = supplyRequestsOf === incidentId ? supplyRequests : [];
  const list = byId("detail-supplies");
  if (shown.length === 0) {
    list.replaceChildren(make("li", say("noSupplyRequests")));
    return;
  }
  list.replaceChildren(
    ...shown.map((request) => {
      const item = make("li");
      item.dataset.requestId = request.id;
      const lines = request.lines.map((line) => `${line.itemId} ×${line.quantity}`).join(", ");
      item.append(make("strong", `${request.id} · ${words().supplyStatuses[request.status] ?? ""}`), make("span", ` · ${lines}`));
      const taken = request.allocations.map((allocation) => `${allocation.itemId} ${allocation.quantity} ← ${allocation.depotId}`);
      if (taken.length > 0) {
        item.append(make("div", taken.join("; ")));
      }
      if (request.short.length > 0) {
        const short = request.short.map((line) => `${line.itemId} ×${line.quantity}`).join(", ");
        item.append(make("div", `${say("supplyShort")}: ${short}`, "low"));
      }
      return item;
    }),
  );
}

/** The pending suggestions, for a commander (others are refused them). */
async function readSuggestions(signal: AbortSignal): Promise<void> {
  if (!mayCommand()) {
    return;
  }
  try {
    const listed = await capClient.listCapSuggestions({ all: false }, { signal });
    suggestions = listed.suggestions;
    keepingFocus(byId("cap-panel"), drawSuggestions);
  } catch (failure) {
    console.warn(`cannot read the CAP suggestions: ${describe(failure).message}`);
  }
}

function drawSuggestions(): void {
  const panel = byId("cap-panel");
  panel.hidden = suggestions.length === 0;
  byId("cap-suggestions").replaceChildren(
    ...suggestions.map((suggestion) => {
      const spec = suggestion.spec;
      const alert = suggestion.alert;
      const id = spec?.id ?? "";
      const item = make("li");
      item.dataset.suggestionId = id;
      const plan = spec?.planId ? say("capPlan", { plan: plans.find((found) => found.id === spec.planId)?.name || spec.planId }) : say("capNoPlan");
      item.append(
        make(
          "span",
          say("capSuggestion", {
            sender: alert?.sender ?? "",
            headline: alert?.headline ?? "",
            event: alert?.event ?? "",
            areas: (spec?.areaIds ?? []).map(areaName).join("、"),
            grade: words().modes[spec?.mode ?? 0] ?? "",
            plan,
          }),
        ),
      );
      const approve = make("button", say("capApprove"), "primary");
      approve.type = "button";
      approve.dataset.focusKey = `approve:${id}`;
      approve.setAttribute("aria-label", say("capApproveLabel", { id }));
      approve.addEventListener("click", () => void decideSuggestion(id, true));
      const dismiss = make("button", say("capDismiss"));
      dismiss.type = "button";
      dismiss.dataset.focusKey = `dismiss:${id}`;
      dismiss.setAttribute("aria-label", say("capDismissLabel", { id }));
      dismiss.addEventListener("click", () => void decideSuggestion(id, false));
      item.append(approve, dismiss);
      return item;
    }),
  );
}

async function decideSuggestion(id: string, approve: boolean): Promise<void> {
  const result = byId("cap-result");
  result.replaceChildren();
  try {
    if (approve) {
      await capClient.approveCapSuggestion({ suggestionId: id });
    } else {
      await capClient.dismissCapSuggestion({ suggestionId: id, reason: "" });
    }
    result.textContent = say(approve ? "capApproved" : "capDismissed", { id });
    suggestions = suggestions.filter((found) => found.spec?.id !== id);
    keepingFocus(byId("cap-panel"), drawSuggestions);
    byId("cap-panel").hidden = false;
  } catch (failure) {
    show(describe(failure), result);
  }
}

async function readPlans(signal: AbortSignal): Promise<void> {
  try {
    const listed = await client.listPlans({}, { signal });
    plans = listed.plans;
    activations = listed.activations;
    fillPlanChoices();
    drawPlans();
    drawFiguresSoon();
  } catch (failure) {
    console.warn(`cannot read the plans: ${describe(failure).message}`);
  }
}

async function readCallups(signal: AbortSignal): Promise<void> {
  try {
    callups = (await client.callupStatus({ openOnly: true }, { signal })).callups;
    drawCallups();
    drawFiguresSoon();
  } catch (failure) {
    console.warn(`cannot read the call-ups: ${describe(failure).message}`);
  }
}

async function readMessages(signal: AbortSignal): Promise<void> {
  try {
    messages = (await client.listMessages({ limit: MESSAGES_SHOWN }, { signal })).messages.reverse();
    drawMessages();
  } catch (failure) {
    console.warn(`cannot read the messages: ${describe(failure).message}`);
  }
}

/** Reads where the replay is; a dispatcher serving its own journal refuses,
 * and the page shows no replay controls. */
async function readReplay(signal: AbortSignal): Promise<void> {
  try {
    replay = await client.getReplay({}, { signal });
    replayReadAt = performance.now();
    replayAsked = "replay";
  } catch (failure) {
    replay = null;
    // A live dispatcher says so (failed_precondition); anything else (a
    // lost connection) is asked again at the next tick.
    replayAsked = describe(failure).reason === "FAILED_PRECONDITION" ? "live" : "unknown";
  }
  drawReplay();
}

/** The replay's time now, from its state and the time since it was read. */
function replayNow(state: ReplayState): number {
  const at = Number(state.clockMs);
  return state.paused ? at : at + (performance.now() - replayReadAt) * state.speed;
}

function drawReplay(): void {
  const bar = byId("replay-bar");
  bar.hidden = replay === null;
  if (replay === null) {
    return;
  }
  const now = Math.min(replayNow(replay), Math.max(Number(replay.lastAtMs), Number(replay.clockMs)));
  const first = Number(replay.firstAtMs);
  const span = Math.max(1, Number(replay.lastAtMs) - first);
  bar.dataset.paused = String(replay.paused);
  bar.dataset.speed = String(replay.speed);
  bar.dataset.clockMs = String(Math.round(now));
  const play = byId("replay-play");
  play.textContent = say(replay.paused ? "replayPlay" : "replayPause");
  play.setAttribute("aria-pressed", String(replay.paused));
  const speed = byId<HTMLSelectElement>("replay-speed");
  const speeds = [...new Set([...REPLAY_SPEEDS, replay.speed])].sort((a, b) => a - b);
  if (speed.options.length !== speeds.length) {
    speed.replaceChildren(...speeds.map((value) => new Option(`${value}×`, String(value))));
  }
  speed.value = String(replay.speed);
  byId<HTMLProgressElement>("replay-progress").value = Math.round(((now - first) / span) * 1000);
  const time = new Date(now);
  const clock = byId<HTMLTimeElement>("replay-clock");
  clock.dateTime = time.toISOString();
  clock.textContent = say("replayAt", {
    time: time.toLocaleString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false }),
    shown: String(replay.shownSeq),
    total: String(replay.lastSeq),
  });
}

async function setReplay(change: { speed?: number; play?: ReplayPlay; skipToMs?: bigint }): Promise<void> {
  const done = await act("replay-result", async () => {
    replay = await client.setReplay(change);
    replayReadAt = performance.now();
    return "";
  });
  if (done) {
    drawReplay();
  }
}

/** To whom a message went, in words. */
function audienceOf(to: MessageAudience | undefined): string {
  switch (to?.to.case) {
    case "agentId":
      return to.to.value;
    case "incidentId":
      return `${say("messageToIncident")} ${to.to.value}`;
    case "areaId":
      return areaName(to.to.value);
    default:
      return "";
  }
}

/** The messages sent, each with who read it and the replies. */
function drawMessages(): void {
  const list = byId("messages");
  if (messages.length === 0) {
    list.replaceChildren(make("li", say("noMessages"), "empty"));
    return;
  }
  list.replaceChildren(
    ...messages.map((message) => {
      const item = make("li");
      item.dataset.messageId = message.id;
      item.dataset.read = String(message.readBy.length);
      item.dataset.replies = String(message.replies.length);
      const at = new Date(Number(message.sentAtMs)).toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
      const line = make("div", `${at} ${message.from.replace(/^operator:/, "")} → ${audienceOf(message.to)}：${message.text}`);
      const status = make(
        "div",
        say("messageStatus", { n: message.recipientIds.length, read: message.readBy.length, replies: message.replies.length }),
        "status",
      );
      item.append(line, status);
      if (message.replies.length > 0) {
        const replies = make("ul");
        for (const reply of message.replies) {
          const entry = make("li", `${reply.agentId}：${reply.text}`);
          entry.dataset.agentId = reply.agentId;
          replies.append(entry);
        }
        item.append(replies);
      }
      return item;
    }),
  );
}

/** The ids the message form suggests for its kind of audience. */
function fillMessageChoices(): void {
  const kind = byId<HTMLSelectElement>("message-to-kind").value;
  const ids =
    kind === "person"
      ? [...(cityMap?.people.keys() ?? [])]
      : kind === "incident"
        ? [...(cityMap?.incidents.keys() ?? [])]
        : areaOrder.map((area) => area.id);
  byId("message-to-choices").replaceChildren(...ids.slice(0, 500).map((id) => new Option(kind === "area" ? areaName(id) : id, id)));
}

async function sendMessage(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const kind = byId<HTMLSelectElement>("message-to-kind").value;
  const target = byId<HTMLInputElement>("message-to").value.trim();
  const text = byId<HTMLTextAreaElement>("message-text").value.trim();
  if (target === "") {
    refuse("message-result", say("messageNeedsTo"), "message-to");
    return;
  }
  if (text === "") {
    refuse("message-result", say("messageNeedsText"), "message-text");
    return;
  }
  const to: MessageAudience["to"] =
    kind === "person"
      ? { case: "agentId", value: target }
      : kind === "incident"
        ? { case: "incidentId", value: target }
        : { case: "areaId", value: target };
  const done = await act("message-result", async () => {
    const sent = await client.sendMessage({ to: { to }, text });
    messages = [sent, ...messages.filter((found) => found.id !== sent.id)].slice(0, MESSAGES_SHOWN);
    byId("message-result").dataset.messageId = sent.id;
    return say("messageSent", { id: sent.id, n: sent.recipientIds.length });
  });
  if (done) {
    byId<HTMLTextAreaElement>("message-text").value = "";
    drawMessages();
  }
}

/** Runs `watch` again after it fails, waiting longer each time (up to RETRY_MAX_S). */
async function keepWatching(name: string, signal: AbortSignal, watch: () => Promise<void>): Promise<void> {
  let wait_s = 1;
  while (!signal.aborted) {
    try {
      await watch();
      wait_s = 1;
    } catch (failure) {
      if (signal.aborted) {
        return;
      }
      const problem = describe(failure);
      console.warn(`the ${name} stream ended: ${problem.message}`);
      if (TOKEN_ENDED.has(problem.reason)) {
        // The token was revoked, rotated or expired meanwhile: log in again.
        logOut();
        show(problem, byId("login-error"));
        return;
      }
      note(say("streamLost", { s: wait_s, message: problem.summary || problem.message }));
    }
    await new Promise((resolve) => setTimeout(resolve, wait_s * 1000));
    wait_s = Math.min(RETRY_MAX_S, wait_s * 2);
  }
}

async function watchPeople(map: CityMap, signal: AbortSignal): Promise<void> {
  // Moves come as ids and positions, not whole records: at city scale
  // nearly every person moves between two pushes.
  for await (const changed of client.watchAgents({ compactMoves: true }, { signal })) {
    if (changed.reset) {
      map.people.clear();
    }
    for (const agent of changed.agents) {
      if (agent.spec) {
        map.people.set(agent.spec.id, agent);
      }
    }
    map.move(changed.movedIds, changed.movedLons, changed.movedLats, changed.movedAtMs);
    for (const gone of changed.goneIds) {
      map.people.delete(gone);
    }
    map.schedulePeopleDraw();
    drawPeopleFiguresSoon();
  }
}

let peopleFiguresPending = false;
/** The figures that count people and the person's panel, at most once a
 * second: moves arrive every push, and at city scale counting everyone
 * per district is not free (the incident lists do not change with them). */
function drawPeopleFiguresSoon(): void {
  if (peopleFiguresPending) {
    return;
  }
  peopleFiguresPending = true;
  setTimeout(() => {
    requestAnimationFrame(() => {
      peopleFiguresPending = false;
      drawFigures();
      drawPerson();
      if (selected !== null) {
        // The open incident's panel shows its people's way left.
        drawIncidents();
      }
    });
  }, 1000);
}

/** The last event seen, so that a stream opened again goes on after it. */
let lastSeq = 0n;

async function watchEvents(map: CityMap, signal: AbortSignal): Promise<void> {
  const request = lastSeq === 0n ? { replayLast: REPLAY_ON_OPEN } : { fromSeq: lastSeq + 1n };
  for await (const event of client.watchEvents(request, { signal })) {
    lastSeq = event.seq;
    clearNote();
    take(map, event, signal);
  }
}

/** What one event changes on the page. */
function take(map: CityMap, event: Event, signal: AbortSignal): void {
  feed.unshift(event);
  feed.length = Math.min(feed.length, FEED_KEPT);
  drawFeedSoon();
  times.take(event);
  duty.take(event.body.case);
  const body = event.body;
  if (body.case === "incidentReported" || body.case === "fieldReported") {
    reportSeen.add(event.incidentId);
    const placement = body.value.placement;
    if (placement) {
      incidentPlaces.set(event.incidentId, [placement.gridId, placement.communityId, placement.streetId, placement.districtId].filter((id) => id !== ""));
    }
  }
  if (event.incidentId !== "") {
    const timeline = timelines.get(event.incidentId) ?? [];
    timeline.push(event);
    // The selected incident's timeline is kept whole; another's is cut,
    // and read again from the journal when it is selected.
    if (timeline.length > TIMELINE_LENGTH && event.incidentId !== selected) {
      timeline.splice(0, timeline.length - TIMELINE_LENGTH);
      reportSeen.delete(event.incidentId);
      timelineCut.delete(event.incidentId);
    }
    timelines.set(event.incidentId, timeline);
    // An incident on the map is read again; one not on it only when the
    // event is newer than the list of open incidents (else it ended before
    // the page opened: the replayed events about it need no read each).
    const recent = Number(event.atMs) > listedAtMs - LIST_MARGIN_MS;
    // A new incident is drawn from its report at once; the read that
    // follows fills in its offers and status.
    if (body.case === "incidentReported" && recent && !map.incidents.has(event.incidentId)) {
      placeIncident(map, incidentFromReport(event.incidentId, event.atMs, body.value));
    }
    if (map.incidents.has(event.incidentId) || (recent && !ENDING_KINDS.has(event.kind))) {
      refreshIncident(map, event.incidentId, signal);
    }
  }
  if (body.case === "reportMerged" && map.incidents.has(body.value.intoIncidentId)) {
    refreshIncident(map, body.value.intoIncidentId, signal);
  }
  takeSafety(event);
  if (body.case === "gridStaffingLow") {
    shortGrids.set(body.value.gridId, { available: body.value.available, minimum: body.value.minimum });
    map.setShortStaffed(new Set(shortGrids.keys()));
  }
  if (body.case === "gridStaffingRestored") {
    shortGrids.delete(body.value.gridId);
    map.setShortStaffed(new Set(shortGrids.keys()));
  }
  if (event.kind === "mode_switched" || event.kind === "areas_imported" || event.kind === "areas_retired") {
    refreshModes(map, signal, event.kind !== "mode_switched");
  }
  if (PLAN_KINDS.has(event.kind)) {
    refreshSoon("plans", () => readPlans(signal));
  }
  if (CAP_KINDS.has(event.kind)) {
    refreshSoon("suggestions", () => readSuggestions(signal));
  }
  if (SUPPLY_KINDS.has(event.kind)) {
    refreshSoon("supplies", () => readSupplies(signal));
  }
  if (SHELTER_KINDS.has(event.kind)) {
    refreshSoon("shelters", () => readShelters(signal));
  }
  if (CALLUP_KINDS.has(event.kind)) {
    refreshSoon("callups", () => readCallups(signal));
  }
  if (MESSAGE_KINDS.has(event.kind)) {
    refreshSoon("messages", () => readMessages(signal));
  }
  drawFiguresSoon();
}

/** Reads waiting to run, by what they read, in the order asked. */
const refreshing = new Map<string, () => Promise<void>>();
let refreshesRunning = 0;
const REFRESHES_AT_ONCE = 3;

/** Runs `read` once in a moment, however many events in a row ask for it. */
function refreshSoon(key: string, read: () => Promise<void>): void {
  if (refreshing.has(key)) {
    return;
  }
  refreshing.set(key, read);
  setTimeout(runRefreshes, 100);
}

/** Starts queued reads, a few at a time: a browser has six connections to
 * the dispatcher over HTTP/1.1 and the two live streams hold two, so a
 * burst of reads (a thousand busy incidents) must not stand in front of
 * every other call. A read queued again while in flight runs once more. */
function runRefreshes(): void {
  while (refreshesRunning < REFRESHES_AT_ONCE) {
    const next = refreshing.entries().next();
    if (next.done) {
      return;
    }
    const [key, read] = next.value;
    refreshing.delete(key);
    refreshesRunning += 1;
    void read()
      .catch(() => undefined)
      .finally(() => {
        refreshesRunning -= 1;
        runRefreshes();
      });
  }
}

/** Reads an incident's whole timeline from the journal, a page at a time,
 * and puts the events the page has already (live ones) among them. */
async function readTimeline(id: string, signal: AbortSignal): Promise<void> {
  if (timelineReading.has(id)) {
    return;
  }
  timelineReading.add(id);
  try {
    const read: Event[] = [];
    let fromSeq = 0n;
    let complete = false;
    for (;;) {
      const page = await client.incidentTimeline({ incidentId: id, fromSeq, limit: 2000 }, { signal });
      if (fromSeq === 0n) {
        complete = page.complete;
      }
      read.push(...page.events);
      if (page.nextSeq === 0n) {
        break;
      }
      fromSeq = page.nextSeq;
    }
    const bySeq = new Map<bigint, Event>();
    for (const event of [...read, ...(timelines.get(id) ?? [])]) {
      bySeq.set(event.seq, event);
    }
    timelines.set(id, [...bySeq.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)));
    if (complete) {
      reportSeen.add(id);
    } else {
      timelineCut.add(id);
    }
    if (selected === id) {
      drawIncidents();
    }
  } catch (failure) {
    console.warn(`cannot read the timeline of incident ${id}: ${describe(failure).message}`);
  } finally {
    timelineReading.delete(id);
  }
}

/** Reads an incident again after an event about it (several events in a
 * row cost one read). */
function refreshIncident(map: CityMap, id: string, signal: AbortSignal): void {
  refreshSoon(`incident:${id}`, async () => {
    try {
      const incident = await client.getIncident({ id }, { signal });
      placeIncident(map, incident);
    } catch (failure) {
      console.warn(`cannot read incident ${id}: ${describe(failure).message}`);
    }
  });
}

/** An incident as its report tells it, until the dispatcher is asked. */
function incidentFromReport(id: string, atMs: bigint, reported: Event_IncidentReported): Incident {
  const spec = reported.spec;
  const placement = reported.placement;
  return create(IncidentSchema, {
    id,
    category: spec?.category ?? "",
    priority: spec?.priority ?? 0,
    location: spec?.location,
    requiredSkills: spec?.requiredSkills ?? [],
    headcount: spec?.headcount ?? 0,
    description: spec?.description ?? "",
    status: IncidentStatus.WAITING,
    reportedAtMs: atMs,
    gridId: placement?.gridId ?? "",
    communityId: placement?.communityId ?? "",
    streetId: placement?.streetId ?? "",
    districtId: placement?.districtId ?? "",
    scope: reported.scope,
    planActivationId: reported.planActivationId,
  });
}

function placeIncident(map: CityMap, incident: Incident): void {
  if (ENDED.has(incident.status)) {
    map.incidents.delete(incident.id);
    if (incident.id === selected) {
      endedSelected = incident;
    } else {
      timelines.delete(incident.id);
    }
  } else {
    map.incidents.set(incident.id, incident);
    placeOf(incident);
    times.knowReported(incident.id, Number(incident.reportedAtMs));
  }
  drawMapSoon();
  drawFiguresSoon();
}

async function refreshModes(map: CityMap, signal: AbortSignal, withGeometry: boolean): Promise<void> {
  try {
    const listed = await client.listAreas({ withGeometry }, { signal });
    takeAreas(listed.areas);
    if (withGeometry) {
      map.setAreas(listed.areas, listed.serviceCentres);
      map.setShortStaffed(new Set(shortGrids.keys()));
    } else {
      map.setModes(listed.areas);
    }
  } catch (failure) {
    console.warn(`cannot read the areas: ${describe(failure).message}`);
  }
}

/** How often, at most, a stream of changes redraws the incidents on the
 * map and the panels: a redraw of a thousand incidents takes a frame or
 * more, and with a busy city changes come every frame. */
const REDRAW_EVERY_MS = 250;

/** `draw` at the next frame, at most once per REDRAW_EVERY_MS however many
 * changes ask for it. */
function throttledDraw(draw: () => void): () => void {
  let pending = false;
  let lastAt = -Infinity;
  return () => {
    if (pending) {
      return;
    }
    pending = true;
    const wait = Math.max(0, lastAt + REDRAW_EVERY_MS - performance.now());
    setTimeout(() => {
      requestAnimationFrame(() => {
        pending = false;
        lastAt = performance.now();
        draw();
      });
    }, wait);
  };
}

/** Redraws the figures and the panels soon (once, however many changes). */
const drawFiguresSoon = throttledDraw(() => {
  drawFigures();
  drawIncidents();
  drawPerson();
  drawPlans();
  drawCallups();
});

/** Redraws the map's incidents and people soon (once, however many changes). */
const drawMapSoon = throttledDraw(() => cityMap?.scheduleDraw());

let feedPending = false;
function drawFeedSoon(): void {
  if (!feedPending) {
    feedPending = true;
    requestAnimationFrame(() => {
      feedPending = false;
      drawFeed();
    });
  }
}

/** Says what is wrong with the live connection, for every role. */
function note(text: string): void {
  byId("live-status").textContent = text;
}

function clearNote(): void {
  const status = byId("live-status");
  if (status.textContent !== "") {
    status.textContent = "";
  }
}

function pickPlace(lon: number, lat: number, areaId: string): boolean {
  // A commander's click also chooses the area to switch or act on.
  if (mayCommand() && areas.has(areaId)) {
    for (const id of ["mode-area", "plan-area", "callup-area"]) {
      byId<HTMLSelectElement>(id).value = areaId;
    }
  }
  if (!mayCreate()) {
    return false;
  }
  byId<HTMLInputElement>("lon").value = lon.toFixed(6);
  byId<HTMLInputElement>("lat").value = lat.toFixed(6);
  byId("create-result").replaceChildren();
  byId<HTMLSelectElement>("category").focus();
  return true;
}

/** Shows the outcome of an action: `ok` text, or the typed error. */
async function act(resultId: string, action: () => Promise<string>): Promise<boolean> {
  const result = byId(resultId);
  result.className = "result";
  result.replaceChildren();
  try {
    const text = await action();
    result.className = "result ok";
    result.textContent = text;
    return true;
  } catch (failure) {
    result.className = "result failed";
    show(describe(failure), result);
    return false;
  }
}

function refuse(resultId: string, text: string, focusId: string): void {
  const result = byId(resultId);
  result.className = "result failed";
  result.textContent = text;
  byId(focusId).focus();
}

/** Hides the sign-in QR code (another person chosen, logged out): it holds a token. */
function closeSignIn(): void {
  byId("sign-in-confirm").hidden = true;
  byId("sign-in-code").hidden = true;
  byId("sign-in-code").replaceChildren();
  byId("sign-in-button").hidden = false;
}

/** Issues the person shown a new token (IssueAgentToken, as the console's
 * `roster token ID --link`) and shows their sign-in link as a QR code. */
async function showSignIn(): Promise<void> {
  const agentId = selectedPerson;
  if (agentId === null) {
    return;
  }
  await act("person-result", async () => {
    const issued = await client.issueAgentToken({ agentId });
    const link = signInLink(window.location.origin, issued.subject, issued.token);
    const box = byId("sign-in-code");
    const linkLabel = make("label", say("signInLink"));
    linkLabel.htmlFor = "sign-in-link";
    const linkField = make("input");
    linkField.id = "sign-in-link";
    linkField.readOnly = true;
    linkField.value = link;
    box.replaceChildren(make("p", say("signInShown", { id: issued.subject })), qrSvg(link, say("signInQr", { id: issued.subject })), linkLabel, linkField);
    box.dataset.agentId = issued.subject;
    box.hidden = false;
    byId("sign-in-confirm").hidden = true;
    return "";
  });
}

async function createIncident(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const result = byId("create-result");
  const lon = Number.parseFloat(byId<HTMLInputElement>("lon").value);
  const lat = Number.parseFloat(byId<HTMLInputElement>("lat").value);
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) {
    result.className = "result failed";
    result.textContent = say("placeFirst");
    return;
  }
  const button = byId<HTMLButtonElement>("create-button");
  button.disabled = true;
  result.className = "result";
  result.textContent = say("creating");
  const report = {
    location: { lon, lat },
    category: byId<HTMLSelectElement>("category").value,
    priority: Number.parseInt(byId<HTMLSelectElement>("priority").value, 10),
    requiredSkills: checkedValues("skills"),
    headcount: Number.parseInt(byId<HTMLInputElement>("headcount").value, 10) || 0,
    description: byId<HTMLInputElement>("description").value,
  };
  const choice = byId("create-duplicates");
  try {
    // Duplicates at intake: open incidents nearby of a like category are
    // shown before anything is created; the operator creates anyway or
    // records the report as a duplicate of one (offered to nobody).
    const decided = event.submitter instanceof HTMLButtonElement && event.submitter.dataset.decided === "anyway";
    if (!decided) {
      const found = await client.findDuplicates({ location: { lon, lat }, category: report.category });
      if (found.duplicates.length > 0) {
        showDuplicates(found);
        result.className = "result";
        result.textContent = "";
        return;
      }
    }
    choice.hidden = true;
    choice.replaceChildren();
    const incident = await client.createIncident(report);
    result.className = "result ok";
    result.textContent = say("created", { id: incident.id });
    result.dataset.incidentId = incident.id;
    if (cityMap) {
      cityMap.clearPick();
      placeIncident(cityMap, incident);
    }
  } catch (failure) {
    result.className = "result failed";
    show(describe(failure), result);
  } finally {
    button.disabled = false;
  }
}

/** The possible duplicates under the create form, with the two ways on. */
function showDuplicates(found: FindDuplicatesResponse): void {
  const choice = byId("create-duplicates");
  const list = make("ul");
  const buttons: HTMLButtonElement[] = [];
  for (const duplicate of found.duplicates) {
    const incident = duplicate.incident;
    if (!incident) {
      continue;
    }
    const line = say("duplicateLine", {
      id: incident.id,
      category: words().categories[incident.category] ?? incident.category,
      p: incident.priority,
      d: Math.round(duplicate.distanceM),
      ago: duplicate.minutesAgo,
    });
    const merge = make("button", say("mergeIntoThis", { id: incident.id }));
    merge.type = "button";
    merge.dataset.mergeInto = incident.id;
    merge.addEventListener("click", () => void mergeReport(incident.id));
    const item = make("li", line);
    item.append(" ", merge);
    list.append(item);
    buttons.push(merge);
  }
  const anyway = make("button", say("createAnyway"));
  anyway.type = "submit";
  anyway.dataset.decided = "anyway";
  anyway.setAttribute("form", "create-form");
  choice.replaceChildren(make("p", say("duplicatesFound", { m: found.withinM, min: found.withinMinutes })), list, anyway);
  choice.hidden = false;
  (buttons[0] ?? anyway).focus();
}

/** Records the form's report as a duplicate of `into` (MergeIncidents with the report). */
async function mergeReport(into: string): Promise<void> {
  const lon = Number.parseFloat(byId<HTMLInputElement>("lon").value);
  const lat = Number.parseFloat(byId<HTMLInputElement>("lat").value);
  const choice = byId("create-duplicates");
  await act("create-result", async () => {
    const incident = await client.mergeIncidents({
      intoIncidentId: into,
      report: {
        location: { lon, lat },
        category: byId<HTMLSelectElement>("category").value,
        priority: Number.parseInt(byId<HTMLSelectElement>("priority").value, 10),
        requiredSkills: checkedValues("skills"),
        headcount: Number.parseInt(byId<HTMLInputElement>("headcount").value, 10) || 0,
        description: byId<HTMLInputElement>("description").value,
      },
    });
    choice.hidden = true;
    choice.replaceChildren();
    if (cityMap) {
      cityMap.clearPick();
      placeIncident(cityMap, incident);
    }
    return say("mergedAsDuplicate", { id: incident.id });
  });
}

/** The "为什么" section: the ranked candidates and the people passed over,
 * as the dispatcher explains them now (ExplainIncident). A viewer's answer
 * has banded distances and no ranks or ETAs. */
async function explainSelected(): Promise<void> {
  const id = selected;
  if (id === null) {
    return;
  }
  const box = byId("why-result");
  box.dataset.incidentId = id;
  box.replaceChildren(make("p", say("whyLoading")));
  try {
    const explanation = await client.explainIncident({ incidentId: id, candidates: 10, passedOver: 15 });
    if (selected === id) {
      drawExplanation(box, explanation);
    }
  } catch (failure) {
    box.replaceChildren();
    show(describe(failure), box);
  }
}

function distanceText(metres: number): string {
  return metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
}

function drawExplanation(box: HTMLElement, explanation: ExplainIncidentResponse): void {
  const nodes: HTMLElement[] = [];
  if (explanation.candidates.length === 0) {
    nodes.push(make("p", say("whyNone")));
  } else {
    nodes.push(make("p", say("whyCandidates", { n: explanation.candidatesTotal }), "why-heading"));
    const list = make("ol", "", "why-candidates");
    for (const candidate of explanation.candidates) {
      const item = make("li");
      item.dataset.agentId = candidate.agentId;
      const parts = [candidate.rank > 0 ? say("whyRank", { n: candidate.rank }) : "·"];
      parts.push(candidate.etaS > 0 ? say("whyAway", { d: distanceText(candidate.distanceM), eta: duration(candidate.etaS * 1000) }) : distanceText(candidate.distanceM));
      item.append(personButton(candidate.agentId), make("span", ` ${parts.join(" · ")}`));
      if (candidate.offered) {
        item.append(make("span", say("whyOffered"), "why-offered"));
      }
      list.append(item);
    }
    nodes.push(list);
  }
  if (explanation.passedOver.length > 0) {
    nodes.push(make("p", say("whyPassedOver"), "why-heading"));
    const list = make("ul", "", "why-passed");
    for (const passed of explanation.passedOver) {
      const item = make("li");
      item.dataset.agentId = passed.agentId;
      item.dataset.reason = String(passed.reason);
      let reason = words().reasonNames[passed.reason] ?? String(passed.reason);
      if (passed.lackingSkills.length > 0) {
        reason += `：${passed.lackingSkills.map((skill) => words().skillNames[skill] ?? skill).join("、")}`;
      } else if (passed.incidentId !== "") {
        reason += ` (${passed.incidentId})`;
      }
      const where = passed.located ? ` · ${distanceText(passed.distanceM)}` : "";
      item.append(personButton(passed.agentId), make("span", `${where} · ${reason}`));
      list.append(item);
    }
    nodes.push(list);
  }
  if (explanation.reasonCounts.length > 0) {
    const counts = explanation.reasonCounts.map((count) => `${words().reasonNames[count.reason] ?? count.reason} ${count.people}`).join("，");
    nodes.push(make("p", say("whyCounts", { counts }), "why-counts"));
  }
  box.replaceChildren(...nodes);
}

async function endIncident(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const id = selected;
  if (id === null) {
    return;
  }
  const note = byId<HTMLInputElement>("end-note").value.trim();
  if (note === "") {
    refuse("end-result", say("noteNeeded"), "end-note");
    return;
  }
  const closing = event.submitter instanceof HTMLButtonElement && event.submitter.value === "close";
  await act("end-result", async () => {
    const incident = closing ? await client.closeIncident({ id, feedback: note }) : await client.cancelIncident({ id, reason: note });
    byId<HTMLInputElement>("end-note").value = "";
    if (cityMap) {
      placeIncident(cityMap, incident);
    }
    return say("ended", { id });
  });
}

async function triage(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const reportId = selected;
  if (reportId === null) {
    return;
  }
  const how = event.submitter instanceof HTMLButtonElement ? event.submitter.value : "accept";
  const into = byId<HTMLSelectElement>("triage-merge-into").value;
  const reason = byId<HTMLInputElement>("triage-reason").value.trim();
  if (how === "merge" && into === "") {
    refuse("end-result", say("mergeNeeded"), "triage-merge-into");
    return;
  }
  if (how === "reject" && reason === "") {
    refuse("end-result", say("reasonNeeded"), "triage-reason");
    return;
  }
  const action =
    how === "merge"
      ? { case: "mergeInto" as const, value: into }
      : how === "reject"
        ? { case: "rejectReason" as const, value: reason }
        : {
            case: "accept" as const,
            value: {
              priority: Number.parseInt(byId<HTMLSelectElement>("triage-priority").value, 10),
              headcount: Number.parseInt(byId<HTMLInputElement>("triage-headcount").value, 10) || 0,
              requiredSkills: [],
            },
          };
  await act("end-result", async () => {
    const incident = await client.triageReport({ reportId, action });
    byId<HTMLInputElement>("triage-reason").value = "";
    if (cityMap) {
      placeIncident(cityMap, incident);
    }
    return say("triaged", { id: reportId, action: words().incidentStatuses[incident.status] ?? "" });
  });
}

async function setMode(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const areaId = byId<HTMLSelectElement>("mode-area").value;
  const mode = Number.parseInt(byId<HTMLSelectElement>("mode-mode").value, 10) as Mode;
  const reason = byId<HTMLInputElement>("mode-reason").value.trim();
  if (reason === "") {
    refuse("mode-result", say("reasonNeeded"), "mode-reason");
    return;
  }
  await act("mode-result", async () => {
    const area = await client.setMode({ areaId, mode, reason });
    return say("modeSwitched", { area: area.name || area.id, mode: words().modes[area.mode] ?? "" });
  });
}

async function activatePlan(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const planId = byId<HTMLSelectElement>("plan-plan").value;
  const areaId = byId<HTMLSelectElement>("plan-area").value;
  const reason = byId<HTMLInputElement>("plan-reason").value.trim();
  if (reason === "") {
    refuse("plan-result", say("reasonNeeded"), "plan-reason");
    return;
  }
  const done = await act("plan-result", async () => {
    const activation = await client.activatePlan({ planId, areaId, reason });
    activations = [...activations.filter((found) => found.id !== activation.id), activation];
    return say("planActivated", { plan: plans.find((plan) => plan.id === planId)?.name || planId, area: areaName(areaId) });
  });
  if (done) {
    drawPlans();
    drawFigures();
  }
}

async function endPlan(activationId: string): Promise<void> {
  const reason = byId<HTMLInputElement>("plan-reason").value.trim();
  if (reason === "") {
    refuse("plan-result", say("reasonNeeded"), "plan-reason");
    return;
  }
  const done = await act("plan-result", async () => {
    const ended = await client.deactivatePlan({ activationId, reason });
    activations = activations.map((found) => (found.id === ended.id ? ended : found));
    return say("planEnded");
  });
  if (done) {
    drawPlans();
    drawFigures();
    byId("plan-plan").focus();
  }
}

async function callUp(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const minutes = Number.parseInt(byId<HTMLInputElement>("callup-deadline").value, 10);
  if (byId<HTMLInputElement>("callup-reason").value.trim() === "") {
    refuse("callup-result", say("reasonNeeded"), "callup-reason");
    return;
  }
  const done = await act("callup-result", async () => {
    const callup = await client.callUp({
      areaId: byId<HTMLSelectElement>("callup-area").value,
      roles: checkedValues("callup-roles").map((value) => Number.parseInt(value, 10) as Role),
      reason: byId<HTMLInputElement>("callup-reason").value.trim(),
      deadlineS: Number.isFinite(minutes) && minutes > 0 ? minutes * 60 : 0,
    });
    callups = [...callups.filter((found) => found.id !== callup.id), callup];
    byId("callup-result").dataset.callupId = callup.id;
    return say("callupIssued", { id: callup.id, n: callup.people.length });
  });
  if (done) {
    drawCallups();
    drawFigures();
  }
}

/** Wall mode: the map and the figures for the big screen, no controls. */
function setWall(on: boolean): void {
  const loggedIn = !byId("command-view").hidden;
  const wall = on && loggedIn;
  document.body.classList.toggle("wall", wall);
  const hash = wall ? "#wall" : "";
  if (window.location.hash !== hash) {
    history.replaceState(null, "", `${window.location.pathname}${window.location.search}${hash}`);
  }
  byId("wall-hint").textContent = wall ? say("wallHint") : "";
  if (wall) {
    // Nothing on the wall shows a focus ring, and it starts from the top.
    if (document.activeElement instanceof HTMLElement || document.activeElement instanceof SVGElement) {
      document.activeElement.blur();
    }
    document.querySelector(".side")?.scrollTo({ top: 0 });
  }
  if (!wall && document.fullscreenElement) {
    void document.exitFullscreen().catch(() => undefined);
  }
  cityMap?.scheduleDraw();
}

function typing(target: EventTarget | null): boolean {
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement;
}

function main(): void {
  const saved = localStorage.getItem(LANGUAGE_KEY);
  setLanguage(saved === "en" ? "en" : "zh");
  applyLanguage();
  byId("language").addEventListener("click", () => {
    const next: Language = language() === "zh" ? "en" : "zh";
    setLanguage(next);
    localStorage.setItem(LANGUAGE_KEY, next);
    applyLanguage();
    if (cityMap) {
      cityMap.scheduleDraw();
    }
  });
  byId("logout").addEventListener("click", logOut);
  byId<HTMLFormElement>("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void logIn(byId<HTMLInputElement>("token").value.trim());
  });
  byId<HTMLFormElement>("create-form").addEventListener("submit", (event) => void createIncident(event));
  byId("why-button").addEventListener("click", () => void explainSelected());
  byId<HTMLFormElement>("end-form").addEventListener("submit", (event) => void endIncident(event));
  byId<HTMLFormElement>("triage-form").addEventListener("submit", (event) => void triage(event));
  byId("sign-in-button").addEventListener("click", () => {
    byId("sign-in-button").hidden = true;
    byId("sign-in-confirm").hidden = false;
    byId("sign-in-issue").focus();
  });
  byId("sign-in-cancel").addEventListener("click", () => {
    closeSignIn();
    byId("sign-in-button").focus();
  });
  byId("sign-in-issue").addEventListener("click", () => void showSignIn());
  byId("photo-close").addEventListener("click", () => byId<HTMLDialogElement>("photo-dialog").close());
  byId<HTMLFormElement>("mode-form").addEventListener("submit", (event) => void setMode(event));
  byId<HTMLFormElement>("plan-form").addEventListener("submit", (event) => void activatePlan(event));
  byId<HTMLFormElement>("callup-form").addEventListener("submit", (event) => void callUp(event));
  byId<HTMLFormElement>("message-form").addEventListener("submit", (event) => void sendMessage(event));
  byId("replay-play").addEventListener("click", () => {
    void setReplay({ play: replay?.paused ? ReplayPlay.PLAY : ReplayPlay.PAUSE });
  });
  byId<HTMLSelectElement>("replay-speed").addEventListener("change", (event) => {
    void setReplay({ speed: Number((event.target as HTMLSelectElement).value) });
  });
  byId("replay-skip").addEventListener("click", () => {
    if (replay) {
      void setReplay({ skipToMs: BigInt(Math.round(replayNow(replay) + REPLAY_SKIP_MS)) });
    }
  });
  // The replay's clock moves on the page between reads; it is read again
  // now and then (the journal may still be written, the events go on).
  let replayTicks = 0;
  setInterval(() => {
    if (session && replayAsked !== "live") {
      replayTicks += 1;
      if (replayTicks % (replayAsked === "unknown" ? 4 : 20) === 0) {
        void readReplay(session.signal);
      } else {
        drawReplay();
      }
    }
  }, 500);
  byId("message-to-kind").addEventListener("change", fillMessageChoices);
  byId("message-to").addEventListener("focus", fillMessageChoices);
  byId<HTMLFormElement>("person-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = byId<HTMLInputElement>("person-id").value.trim();
    if (id !== "") {
      selectPersonById(id);
    }
  });
  for (const id of ["filter-area", "filter-kind", "filter-incident"]) {
    byId(id).addEventListener("input", drawFeed);
  }
  byId("zoom-in").addEventListener("click", () => cityMap?.zoomBy(1.5));
  byId("zoom-out").addEventListener("click", () => cityMap?.zoomBy(1 / 1.5));
  byId("zoom-reset").addEventListener("click", () => cityMap?.resetView());
  byId("wall-button").addEventListener("click", () => {
    setWall(true);
    void document.documentElement.requestFullscreen?.().catch(() => undefined);
  });
  document.addEventListener("keydown", (event) => {
    if (byId("command-view").hidden || typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const wall = document.body.classList.contains("wall");
    if (event.key === "w" || event.key === "W" || (wall && event.key === "Escape")) {
      event.preventDefault();
      setWall(!wall);
    }
  });
  window.addEventListener("hashchange", () => setWall(window.location.hash === "#wall"));
  for (const id of ["lon", "lat"]) {
    byId(id).addEventListener("change", () => {
      const lon = Number.parseFloat(byId<HTMLInputElement>("lon").value);
      const lat = Number.parseFloat(byId<HTMLInputElement>("lat").value);
      if (cityMap && Number.isFinite(lon) && Number.isFinite(lat)) {
        cityMap.showPick(lon, lat);
      }
    });
  }
  // Open offers' seconds left, in the incident's panel.
  setInterval(() => {
    for (const state of document.querySelectorAll<HTMLElement>("#detail-offers [data-deadline]")) {
      state.textContent = say("outcomeOpen", { s: secondsLeft(Number(state.dataset.deadline)) });
    }
  }, 1000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    void logIn(token);
  } else {
    showView(false);
    byId<HTMLInputElement>("token").focus();
  }
}

main();
