// The command map's page: log in with an operator token, then the city
// with people, incidents, an event feed and key figures, live; a
// dispatcher (and up) creates incidents by clicking the map. Every call
// goes to the dispatcher's CommandService over grpc-web, with the client
// generated from the .proto; the server enforces the roles, the page only
// hides what the role may not do.

import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AgentStatus,
  CommandService,
  IncidentStatus,
  OperatorRole,
  type Event,
  type Incident,
} from "./gen/pingji/v1/pingji_pb.js";
import { describe, show } from "./errors.js";
import { language, say, setLanguage, words, type Language } from "./i18n.js";
import { CityMap, MODE_COLOURS, PRIORITY_COLOURS, STATUS_COLOURS } from "./map.js";

/** The token lives in this tab's session storage only: never in a URL. */
const TOKEN_KEY = "pingji.token";
const LANGUAGE_KEY = "pingji.language";
const FEED_LENGTH = 60;
const RETRY_MAX_S = 30;
const CATEGORIES = ["medical", "fire", "flood", "rescue", "evacuation", "elder_care", "power_outage", "sandbags", "public_health", "inspection"];
const SKILLS = ["first_aid", "elder_care", "rescue", "electrician", "driving", "counselling", "translation", "firefighting", "nursing", "plumbing"];
/** Reasons that end the session: the token no longer works. */
const TOKEN_ENDED = new Set(["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_MISSING"]);
const ENDED = new Set([IncidentStatus.CANCELLED, IncidentStatus.CLOSED, IncidentStatus.MERGED, IncidentStatus.REJECTED]);

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
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

/** What is open now: ended when logging out. */
let session: AbortController | null = null;
let role = OperatorRole.UNSPECIFIED;
let operatorName = "";
let cityMap: CityMap | null = null;
const feed: Event[] = [];
/** Events about each open incident since the page opened, oldest first. */
const timelines = new Map<string, Event[]>();
const TIMELINE_LENGTH = 100;
/** The incident whose details show. */
let selected: string | null = null;

function applyLanguage(): void {
  document.documentElement.lang = language() === "zh" ? "zh-CN" : "en";
  document.title = say("title");
  for (const node of document.querySelectorAll<HTMLElement>("[data-t]")) {
    const key = node.dataset.t as Parameters<typeof say>[0];
    node.textContent = say(key);
  }
  const toggle = byId<HTMLButtonElement>("language");
  toggle.textContent = language() === "zh" ? "English" : "中文";
  toggle.lang = language() === "zh" ? "en" : "zh-CN";
  byId("map").setAttribute("aria-label", say("mapLabel"));
  byId("legend").setAttribute("aria-label", say("legend"));
  fillChoices();
  drawLegend();
  drawWhoAmI();
  drawFigures();
  drawIncidents();
  drawFeed();
  drawMapHelp();
}

function fillChoices(): void {
  const category = byId<HTMLSelectElement>("category");
  const chosenCategory = category.value || CATEGORIES[0];
  category.replaceChildren(...CATEGORIES.map((name) => new Option(words().categories[name] ?? name, name)));
  category.value = chosenCategory;
  const priority = byId<HTMLSelectElement>("priority");
  const chosenPriority = priority.value || "2";
  priority.replaceChildren(...[1, 2, 3, 4].map((level) => new Option(words().priorities[level], String(level))));
  priority.value = chosenPriority;
  const skills = byId("skills");
  const checked = new Set([...skills.querySelectorAll<HTMLInputElement>("input:checked")].map((input) => input.value));
  skills.replaceChildren(
    ...SKILLS.map((skill) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "skill";
      box.value = skill;
      box.checked = checked.has(skill);
      label.append(box, words().skillNames[skill] ?? skill);
      return label;
    }),
  );
}

function drawLegend(): void {
  const entries: [string, string, boolean][] = [
    [MODE_COLOURS[1], words().modes[1], false],
    [MODE_COLOURS[2], words().modes[2], false],
    [MODE_COLOURS[3], words().modes[3], false],
    [MODE_COLOURS[4], words().modes[4], false],
    [MODE_COLOURS[5], words().modes[5], false],
    [PRIORITY_COLOURS[1], `${words().priority} 1`, true],
    [PRIORITY_COLOURS[2], `${words().priority} 2`, true],
    [PRIORITY_COLOURS[3], `${words().priority} 3`, true],
    [PRIORITY_COLOURS[4], `${words().priority} 4`, true],
    [STATUS_COLOURS[AgentStatus.AVAILABLE], words().statuses[AgentStatus.AVAILABLE], true],
    [STATUS_COLOURS[AgentStatus.BUSY], words().statuses[AgentStatus.BUSY], true],
  ];
  const lines: [string, string][] = [
    ["line dashed", say("offerLine")],
    ["line", say("assignmentLine")],
  ];
  byId("legend").replaceChildren(
    ...entries.map(([colour, text, dot]) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = dot ? "swatch dot" : "swatch";
      swatch.style.backgroundColor = colour;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, text);
      return item;
    }),
    ...lines.map(([kind, text]) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = kind;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, text);
      return item;
    }),
  );
}

function drawMapHelp(): void {
  byId("map-help").textContent = mayCreate() ? `${say("mapHelp")} ${say("mapHelpCreate")}` : say("mapHelp");
}

function drawWhoAmI(): void {
  const whoami = byId("whoami");
  whoami.textContent = operatorName === "" ? "" : `${operatorName} · ${say("role")}: ${words().roles[role] ?? ""}`;
  whoami.dataset.role = OperatorRole[role] ?? "";
}

function drawFigures(): void {
  const open = [...(cityMap?.incidents.values() ?? [])];
  const people = [...(cityMap?.people.values() ?? [])];
  const figures: [string, number, string][] = [
    [say("openIncidents"), open.length, "open"],
    ...[1, 2, 3, 4].map((level): [string, number, string] => [say("priorityN", { n: level }), open.filter((incident) => incident.priority === level).length, `p${level}`]),
    [say("available"), people.filter((agent) => agent.status === AgentStatus.AVAILABLE && agent.currentIncidentId === "").length, "available"],
  ];
  byId("figures").replaceChildren(
    ...figures.map(([name, value, key]) => {
      const cell = document.createElement("div");
      cell.dataset.figure = key;
      const term = document.createElement("dt");
      term.textContent = name;
      const figure = document.createElement("dd");
      figure.textContent = String(value);
      cell.append(term, figure);
      return cell;
    }),
  );
}

function drawIncidents(): void {
  const open = [...(cityMap?.incidents.values() ?? [])].sort((a, b) => a.priority - b.priority || a.id.localeCompare(b.id));
  const list = byId("incident-list");
  if (open.length === 0) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = say("noIncidents");
    list.replaceChildren(empty);
  } else {
    list.replaceChildren(
      ...open.map((incident) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.incidentId = incident.id;
        button.setAttribute("aria-pressed", String(incident.id === selected));
        const badge = document.createElement("span");
        badge.className = "priority-badge";
        badge.style.backgroundColor = PRIORITY_COLOURS[incident.priority] ?? PRIORITY_COLOURS[4];
        badge.textContent = `P${incident.priority}`;
        const what = document.createElement("span");
        what.textContent = `${words().categories[incident.category] ?? incident.category} · ${incident.id} · ${words().incidentStatuses[incident.status] ?? ""}`;
        button.append(badge, what);
        button.addEventListener("click", () => select(incident.id));
        item.append(button);
        return item;
      }),
    );
  }
  drawDetail();
}

function drawDetail(): void {
  const detail = byId("incident-detail");
  const incident = selected === null ? undefined : cityMap?.incidents.get(selected);
  if (!incident) {
    detail.hidden = true;
    return;
  }
  detail.hidden = false;
  detail.dataset.incidentId = incident.id;
  byId("detail-title").textContent = `${incident.id} · ${words().categories[incident.category] ?? incident.category} · P${incident.priority}`;
  const skills = incident.requiredSkills.map((skill) => words().skillNames[skill] ?? skill).join("、");
  const people = [
    ...incident.assignments.map((assignment) => `${assignment.agentId} ✓`),
    ...incident.openOffers.map((offer) => `${offer.agentId} …`),
  ].join(", ");
  const facts: [string, string][] = [
    [say("factStatus"), words().incidentStatuses[incident.status] ?? ""],
    [say("factNeeds"), `${incident.headcount}${skills ? ` · ${skills}` : ""}`],
    [say("factPlace"), incident.gridId || "—"],
    [say("factPeople"), people || "—"],
  ];
  byId("detail-facts").replaceChildren(
    ...facts.flatMap(([term, value]) => {
      const name = document.createElement("dt");
      name.textContent = term;
      const text = document.createElement("dd");
      text.textContent = value;
      return [name, text];
    }),
  );
  byId("detail-timeline").replaceChildren(
    ...(timelines.get(incident.id) ?? []).map((event) => {
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      const time = document.createElement("time");
      const at = new Date(Number(event.atMs));
      time.dateTime = at.toISOString();
      time.textContent = at.toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
      const what = document.createElement("span");
      what.textContent = `${words().kinds[event.kind] ?? event.kind}${event.agentId ? ` · ${event.agentId}` : ""}`;
      item.append(time, what);
      return item;
    }),
  );
  byId("end-form").hidden = !mayCreate();
}

function select(incidentId: string): void {
  selected = incidentId;
  byId("end-result").replaceChildren();
  drawIncidents();
  byId("incident-detail").scrollIntoView({ block: "nearest" });
}

async function endIncident(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const result = byId("end-result");
  const id = selected;
  if (id === null) {
    return;
  }
  const note = byId<HTMLInputElement>("end-note").value.trim();
  if (note === "") {
    result.className = "result failed";
    result.textContent = say("noteNeeded");
    byId<HTMLInputElement>("end-note").focus();
    return;
  }
  const closing = event.submitter instanceof HTMLButtonElement && event.submitter.value === "close";
  try {
    const incident = closing
      ? await client.closeIncident({ id, feedback: note })
      : await client.cancelIncident({ id, reason: note });
    byId<HTMLInputElement>("end-note").value = "";
    if (cityMap) {
      placeIncident(cityMap, incident);
    }
    result.className = "result ok";
    result.textContent = say("ended", { id });
  } catch (failure) {
    result.className = "result failed";
    show(describe(failure), result);
  }
}

function drawFeed(): void {
  byId("feed").replaceChildren(
    ...feed.map((event) => {
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      const time = document.createElement("time");
      const at = new Date(Number(event.atMs));
      time.dateTime = at.toISOString();
      time.textContent = at.toLocaleTimeString(language() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
      const what = document.createElement("span");
      const subject = event.incidentId || event.areaId || event.agentId;
      what.textContent = `${words().kinds[event.kind] ?? event.kind}${subject ? ` · ${subject}` : ""}`;
      item.append(time, what);
      return item;
    }),
  );
}

function mayCreate(): boolean {
  return role >= OperatorRole.DISPATCHER;
}

function showView(loggedIn: boolean): void {
  byId("login-view").hidden = loggedIn;
  byId("command-view").hidden = !loggedIn;
  byId("logout").hidden = !loggedIn;
  byId("whoami").hidden = !loggedIn;
}

async function logIn(token: string): Promise<void> {
  const error = byId("login-error");
  error.replaceChildren();
  if (token === "") {
    error.textContent = say("tokenEmpty");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  const button = byId<HTMLButtonElement>("login-form").querySelector("button");
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
  selected = null;
  lastSeq = 0n;
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
  showView(true);
  drawWhoAmI();
  drawMapHelp();
  const map = cityMap ?? new CityMap(byId("map") as unknown as SVGSVGElement, pickPlace, select);
  cityMap = map;
  byId("map").classList.toggle("may-create", mayCreate());
  const areas = await client.listAreas({ withGeometry: true }, { signal: current.signal });
  map.setAreas(areas.areas, areas.serviceCentres);
  byId("map").dataset.areas = String(areas.areas.length);
  const open = await client.listIncidents({ openOnly: true }, { signal: current.signal });
  map.incidents = new Map(open.incidents.map((incident) => [incident.id, incident]));
  map.scheduleDraw();
  drawFigures();
  drawIncidents();
  void keepWatching("events", current.signal, () => watchEvents(map, current.signal));
  void keepWatching("people", current.signal, () => watchPeople(map, current.signal));
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
  for await (const changed of client.watchAgents({}, { signal })) {
    if (changed.reset) {
      map.people.clear();
    }
    for (const agent of changed.agents) {
      if (agent.spec) {
        map.people.set(agent.spec.id, agent);
      }
    }
    for (const gone of changed.goneIds) {
      map.people.delete(gone);
    }
    map.scheduleDraw();
    drawFiguresSoon();
  }
}

/** The last event seen, so that a stream opened again goes on after it. */
let lastSeq = 0n;

async function watchEvents(map: CityMap, signal: AbortSignal): Promise<void> {
  const request = lastSeq === 0n ? { replayLast: 20n } : { fromSeq: lastSeq + 1n };
  for await (const event of client.watchEvents(request, { signal })) {
    lastSeq = event.seq;
    clearNote();
    feed.unshift(event);
    feed.length = Math.min(feed.length, FEED_LENGTH);
    drawFeedSoon();
    if (event.incidentId !== "") {
      const timeline = timelines.get(event.incidentId) ?? [];
      timeline.push(event);
      timeline.splice(0, Math.max(0, timeline.length - TIMELINE_LENGTH));
      timelines.set(event.incidentId, timeline);
      refreshIncident(map, event.incidentId, signal);
    }
    if (event.kind === "mode_switched" || event.kind === "areas_imported" || event.kind === "areas_retired") {
      refreshModes(map, signal, event.kind !== "mode_switched");
    }
  }
}

const refreshing = new Set<string>();

/** Reads an incident again after an event about it (several events in a
 * row cost one read). */
function refreshIncident(map: CityMap, id: string, signal: AbortSignal): void {
  if (refreshing.has(id)) {
    return;
  }
  refreshing.add(id);
  setTimeout(async () => {
    refreshing.delete(id);
    try {
      const incident = await client.getIncident({ id }, { signal });
      placeIncident(map, incident);
    } catch (failure) {
      console.warn(`cannot read incident ${id}: ${describe(failure).message}`);
    }
  }, 100);
}

function placeIncident(map: CityMap, incident: Incident): void {
  if (ENDED.has(incident.status)) {
    map.incidents.delete(incident.id);
    timelines.delete(incident.id);
  } else {
    map.incidents.set(incident.id, incident);
  }
  map.scheduleDraw();
  drawFiguresSoon();
}

async function refreshModes(map: CityMap, signal: AbortSignal, withGeometry: boolean): Promise<void> {
  try {
    const areas = await client.listAreas({ withGeometry }, { signal });
    if (withGeometry) {
      map.setAreas(areas.areas, areas.serviceCentres);
    } else {
      map.setModes(areas.areas);
    }
  } catch (failure) {
    console.warn(`cannot read the areas: ${describe(failure).message}`);
  }
}

let figuresPending = false;
function drawFiguresSoon(): void {
  if (!figuresPending) {
    figuresPending = true;
    requestAnimationFrame(() => {
      figuresPending = false;
      drawFigures();
      drawIncidents();
    });
  }
}

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

function pickPlace(lon: number, lat: number): boolean {
  if (!mayCreate()) {
    return false;
  }
  byId<HTMLInputElement>("lon").value = lon.toFixed(6);
  byId<HTMLInputElement>("lat").value = lat.toFixed(6);
  byId("create-result").replaceChildren();
  byId<HTMLSelectElement>("category").focus();
  return true;
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
  const skills = [...byId("skills").querySelectorAll<HTMLInputElement>("input:checked")].map((input) => input.value);
  const button = byId<HTMLButtonElement>("create-button");
  button.disabled = true;
  result.className = "result";
  result.textContent = say("creating");
  try {
    const incident = await client.createIncident({
      location: { lon, lat },
      category: byId<HTMLSelectElement>("category").value,
      priority: Number.parseInt(byId<HTMLSelectElement>("priority").value, 10),
      requiredSkills: skills,
      headcount: Number.parseInt(byId<HTMLInputElement>("headcount").value, 10) || 0,
      description: byId<HTMLInputElement>("description").value,
    });
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
  byId<HTMLFormElement>("end-form").addEventListener("submit", (event) => void endIncident(event));
  for (const id of ["lon", "lat"]) {
    byId(id).addEventListener("change", () => {
      const lon = Number.parseFloat(byId<HTMLInputElement>("lon").value);
      const lat = Number.parseFloat(byId<HTMLInputElement>("lat").value);
      if (cityMap && Number.isFinite(lon) && Number.isFinite(lat)) {
        cityMap.showPick(lon, lat);
      }
    });
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    void logIn(token);
  } else {
    showView(false);
    byId<HTMLInputElement>("token").focus();
  }
}

main();
