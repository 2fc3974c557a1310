/**
 * The 考核 (who served) panel of the command map: a period and an area,
 * then per person and per community and grid, from `ActivityReport`. Only
 * commanders and admins are given per-person rows (each read audited);
 * other roles see the area rows and a note. Bars are plain HTML (a width
 * per value): the SVG chart set is the console's (`--svg`).
 */
import type { Client } from "@connectrpc/connect";
import type { ActivityReportResponse, CommandService, PersonActivity } from "./gen/pingji/v1/pingji_pb.js";
import { describe } from "./errors.js";
import { language } from "./i18n.js";

const WORDS = {
  zh: {
    loading: "读取中…",
    withheld: "个人数据仅对指挥员和管理员显示",
    nobody: "该时段该区域无人员活动",
    noAreas: "该时段该区域无事件或网格告警",
    person: "人员", offers: "派单", accepted: "接受", declined: "拒绝", timedOut: "超时",
    acceptP50: "接受中位(秒)", arriveP50: "到场中位(秒)", taskH: "任务(时)", dutyH: "在岗(时)",
    reports: "上报 受/并/驳", callups: "召集 到/缺", area: "区域", incidents: "事件", inTime: "按时到位",
    share: "比例", alerts: "告警", lowH: "不足(时)", offersChart: "派单答复（每人）", shareChart: "按时到位比例",
    reasons: "拒绝原因", badPeriod: "请选择开始和结束日期（结束晚于开始）",
  },
  en: {
    loading: "Reading…",
    withheld: "Per-person figures are shown to commanders and admins only",
    nobody: "Nobody was active there in the period",
    noAreas: "No incidents or grid alerts there in the period",
    person: "Person", offers: "Offers", accepted: "Accepted", declined: "Declined", timedOut: "Timed out",
    acceptP50: "Accept p50 s", arriveP50: "Arrive p50 s", taskH: "Tasks h", dutyH: "Duty h",
    reports: "Reports a/m/r", callups: "Call-ups in/missed", area: "Area", incidents: "Incidents", inTime: "In time",
    share: "Share", alerts: "Alerts", lowH: "Low h", offersChart: "Offers answered, per person", shareChart: "Staffed in time",
    reasons: "Why declined", badPeriod: "Choose a start and an end date (the end after the start)",
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

function table(caption: string, headers: string[], rows: string[][]): HTMLTableElement {
  const made = document.createElement("table");
  made.className = "activity-table";
  made.createCaption().textContent = caption;
  const head = made.createTHead().insertRow();
  for (const header of headers) {
    const cell = element("th", header);
    cell.setAttribute("scope", "col");
    head.append(cell);
  }
  const body = made.createTBody();
  for (const row of rows) {
    const line = body.insertRow();
    row.forEach((value, index) => {
      const cell = index === 0 ? element("th", value) : element("td", value);
      if (index === 0) cell.setAttribute("scope", "row");
      line.append(cell);
    });
  }
  return made;
}

const seconds = (value: number | undefined): string => (value === undefined ? "–" : value.toFixed(0));
const hours = (value: number): string => value.toFixed(2);

/** Bars: one row per item, each part's width its share of the largest total. */
function bars(title: string, items: { label: string; parts: { value: number; kind: string; name: string }[] }[]): HTMLElement {
  const figure = element("figure", "", "activity-bars");
  figure.append(element("figcaption", title));
  const largest = Math.max(1, ...items.map((item) => item.parts.reduce((sum, part) => sum + part.value, 0)));
  for (const item of items.slice(0, 30)) {
    const row = element("div", "", "act-row");
    row.append(element("span", item.label, "act-label"));
    const track = element("span", "", "act-track");
    for (const part of item.parts.filter((part) => part.value > 0)) {
      const piece = element("span", "", `act-bar ${part.kind}`);
      piece.style.width = `${(100 * part.value) / largest}%`;
      piece.title = `${part.name} ${part.value}`;
      track.append(piece);
    }
    row.append(track);
    row.append(element("span", item.parts.map((part) => `${part.value}`).join(" / "), "act-value"));
    figure.append(row);
  }
  return figure;
}

function peopleView(report: ActivityReportResponse): HTMLElement[] {
  const w = words();
  if (report.peopleWithheld) return [element("p", w.withheld, "note")];
  if (report.people.length === 0) return [element("p", w.nobody, "note")];
  const rows = report.people.map((person: PersonActivity) => [
    person.name === "" ? person.agentId : `${person.agentId} ${person.name}`,
    `${person.offers}`, `${person.accepted}`, `${person.declined}`, `${person.timedOut}`,
    seconds(person.medianAcceptS), seconds(person.medianArriveS), hours(person.onAssignmentH), hours(person.onDutyH),
    `${person.reports} ${person.reportsAccepted}/${person.reportsMerged}/${person.reportsRejected}`,
    `${person.callups} ${person.checkedIn}/${person.missedCallups}`,
  ]);
  const headers = [w.person, w.offers, w.accepted, w.declined, w.timedOut, w.acceptP50, w.arriveP50, w.taskH, w.dutyH, w.reports, w.callups];
  const views: HTMLElement[] = [table(w.person, headers, rows)];
  const reasons = report.people
    .filter((person) => person.declinedByReason.length > 0)
    .map((person) => `${person.agentId}: ${person.declinedByReason.map((count) => `${count.reason || "–"} ×${count.count}`).join("; ")}`);
  if (reasons.length > 0) {
    const list = element("ul", "", "activity-reasons");
    list.setAttribute("aria-label", w.reasons);
    for (const reason of reasons) list.append(element("li", reason));
    views.push(list);
  }
  views.push(
    bars(
      w.offersChart,
      report.people.map((person) => ({
        label: person.agentId,
        parts: [
          { value: person.accepted, kind: "accepted", name: w.accepted },
          { value: person.declined, kind: "declined", name: w.declined },
          { value: person.timedOut, kind: "timed-out", name: w.timedOut },
        ],
      })),
    ),
  );
  return views;
}

function areasView(report: ActivityReportResponse): HTMLElement[] {
  const w = words();
  if (report.areas.length === 0) return [element("p", w.noAreas, "note")];
  const rows = report.areas.map((area) => [
    area.name === "" ? area.areaId : `${area.areaId} ${area.name}`,
    `${area.incidents}`, `${area.staffedInTime}`,
    area.staffedShare === undefined ? "–" : `${Math.round(area.staffedShare * 100)}%`,
    `${area.staffingAlerts}`, hours(area.lowH),
  ]);
  const withIncidents = report.areas.filter((area) => area.incidents > 0);
  return [
    table(w.area, [w.area, w.incidents, w.inTime, w.share, w.alerts, w.lowH], rows),
    bars(
      `${w.shareChart} (≤ ${report.staffedWithinS} s)`,
      withIncidents.map((area) => ({
        label: area.areaId,
        parts: [
          { value: area.staffedInTime, kind: "accepted", name: w.inTime },
          { value: area.incidents - area.staffedInTime, kind: "late", name: w.incidents },
        ],
      })),
    ),
  ];
}

/** A date input's value (YYYY-MM-DD) as ms since 1970 at local midnight. */
function dayStart(value: string): number {
  return value === "" ? NaN : new Date(`${value}T00:00`).getTime();
}

/** Wires the panel's form; call once. */
export function mountActivity(client: Client<typeof CommandService>): void {
  const form = byId<HTMLFormElement>("activity-form");
  const result = byId("activity-result");
  const today = new Date();
  const iso = (date: Date): string =>
    `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  const from = byId<HTMLInputElement>("activity-from");
  const to = byId<HTMLInputElement>("activity-to");
  if (from.value === "") from.value = iso(new Date(today.getTime() - 6 * 86_400_000));
  if (to.value === "") to.value = iso(today);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fromMs = dayStart(from.value);
    // The end date is included: the period runs to the next midnight.
    const toMs = dayStart(to.value) + 86_400_000;
    const status = byId("activity-status");
    if (!(fromMs > 0) || !(toMs > fromMs)) {
      status.textContent = words().badPeriod;
      return;
    }
    status.textContent = words().loading;
    result.replaceChildren();
    try {
      const areaId = byId<HTMLInputElement>("activity-area").value.trim();
      const report = await client.activityReport({ fromMs: BigInt(fromMs), toMs: BigInt(toMs), areaId, staffedWithinS: 0 });
      status.textContent = "";
      result.replaceChildren(...peopleView(report), ...areasView(report));
    } catch (failure) {
      status.textContent = describe(failure).message;
    }
  });
}
