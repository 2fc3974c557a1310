/**
 * The 值班 (on duty now) panel of the command map: per area, the shifts
 * running now and who works them (checked in or not), from
 * `RosterService.OnDutyNow` through the generated client, areas by name.
 * Read on Show, then again when a roster event (a shift set, a swap, a
 * check-in) arrives on the map's event stream. Shifts also begin and end
 * by the clock, which no event marks, so a slow poll stays for that.
 */
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { RosterService, type OnDutyNowResponse } from "./gen/pingji/v1/pingji_pb.js";
import { describe } from "./errors.js";
import { language } from "./i18n.js";

const WORDS = {
  zh: {
    loading: "读取中…",
    nobody: "该区域现在没有班次",
    empty: "无人",
    checkedIn: "已签到",
    until: "至",
    shown: (shifts: number, people: number): string => `${shifts} 个班次，${people} 人在岗`,
  },
  en: {
    loading: "Reading…",
    nobody: "No shift is running there now",
    empty: "nobody",
    checkedIn: "checked in",
    until: "until",
    shown: (shifts: number, people: number): string => `${shifts} shifts, ${people} people on duty`,
  },
};

function words(): (typeof WORDS)["zh"] {
  return WORDS[language()];
}

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

function element(tag: string, text = "", className = ""): HTMLElement {
  const made = document.createElement(tag);
  if (text !== "") made.textContent = text;
  if (className !== "") made.className = className;
  return made;
}

/** Local time of day of `atMs` in the deployment's zone (`offsetMinutes` east of UTC). */
function localClock(atMs: bigint, offsetMinutes: number): string {
  const local = new Date(Number(atMs) + offsetMinutes * 60_000);
  const pad = (value: number): string => String(value).padStart(2, "0");
  return `${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}`;
}

/** One block per area: its shifts and who is on duty in each. */
export function dutyView(answer: OnDutyNowResponse, areaName: (id: string) => string): HTMLElement[] {
  if (answer.onDuty.length === 0) return [element("p", words().nobody, "empty")];
  const byArea = new Map<string, typeof answer.onDuty>();
  for (const occurrence of answer.onDuty) {
    const list = byArea.get(occurrence.areaId) ?? [];
    list.push(occurrence);
    byArea.set(occurrence.areaId, list);
  }
  const blocks: HTMLElement[] = [];
  for (const [area, occurrences] of byArea) {
    const block = element("li", "", "duty-area");
    const title = element("h3", areaName(area));
    block.dataset.areaId = area;
    block.append(title);
    const shifts = element("ul", "", "duty-shifts");
    for (const occurrence of occurrences) {
      const item = element("li", "", "duty-shift");
      item.dataset.shift = occurrence.shiftId;
      const head = element("div", "", "duty-head");
      head.append(
        element("span", occurrence.duty, "duty-name"),
        element("span", ` ${words().until} ${localClock(occurrence.endsAtMs, answer.utcOffsetMinutes)}`, "duty-until"),
      );
      const people = element("ul", "", "duty-people");
      for (const agent of occurrence.agentIds) {
        const checkedIn = occurrence.checkedInAgentIds.includes(agent);
        const person = element("li", agent, checkedIn ? "duty-person in" : "duty-person");
        if (checkedIn) person.append(element("span", ` · ${words().checkedIn}`, "duty-in"));
        people.append(person);
      }
      if (occurrence.agentIds.length === 0) people.append(element("li", words().empty, "duty-person none"));
      item.append(head, people);
      shifts.append(item);
    }
    block.append(shifts);
    blocks.push(block);
  }
  const list = element("ul", "", "duty-areas");
  list.append(...blocks);
  return [list];
}

/** How often the panel is read again without events: shifts begin and end by the clock. */
const POLL_MS = 5 * 60_000;
/** Roster events arriving together are read once, after this. */
const SETTLE_MS = 300;

/** The `Event.body` cases that change who is on duty or checked in. */
const ROSTER_EVENTS = new Set([
  "shiftsSet",
  "shiftRemoved",
  "availabilitySet",
  "absenceRecorded",
  "swapRequested",
  "swapDecided",
  "shiftCheckedIn",
  "shiftCheckedOut",
]);

export interface DutyPanel {
  /** Tells the panel an event arrived; it reads again on roster events once shown. */
  take(bodyCase: string | undefined): void;
}

export function mountDuty(authorization: Interceptor, areaName: (id: string) => string): DutyPanel {
  const client: Client<typeof RosterService> = createClient(
    RosterService,
    createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [authorization] }),
  );
  const form = byId<HTMLFormElement>("duty-form");
  const status = byId("duty-status");
  const result = byId("duty-result");
  let timer: number | undefined;
  let pending: number | undefined;
  const read = async (): Promise<void> => {
    status.textContent = words().loading;
    try {
      const areaId = byId<HTMLInputElement>("duty-area").value.trim();
      const answer = await client.onDutyNow({ areaId });
      const people = new Set(answer.onDuty.flatMap((occurrence) => occurrence.agentIds)).size;
      status.textContent = words().shown(answer.onDuty.length, people);
      result.replaceChildren(...dutyView(answer, areaName));
    } catch (failure) {
      status.textContent = describe(failure).message;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void read();
    if (timer === undefined) timer = window.setInterval(() => void read(), POLL_MS);
  });
  return {
    take(bodyCase: string | undefined): void {
      if (timer === undefined || bodyCase === undefined || !ROSTER_EVENTS.has(bodyCase) || pending !== undefined) return;
      pending = window.setTimeout(() => {
        pending = undefined;
        void read();
      }, SETTLE_MS);
    },
  };
}
