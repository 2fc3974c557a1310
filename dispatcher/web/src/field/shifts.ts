// 我的班次: the person's own duty shifts, running now and in the coming
// days (FieldService.MyShifts, on their own token), checking in and out of
// the one running now, and asking a colleague to take one occurrence (a
// swap a commander approves). These calls need the network: unlike an
// answer to an offer, a check-in made later offline would record the wrong
// time, so a failure is shown and nothing is queued.

import { type MyShift, type MyShiftsResponse, type Swap, SwapStatus } from "../gen/pingji/v1/pingji_pb.js";
import { describe } from "../errors.js";
import { language } from "./i18n.js";
import { AGENT_KEY, byId, client } from "./state.js";

const WORDS = {
  zh: {
    loading: "读取中…",
    none: "未来 7 天没有您的班次。",
    now: "进行中",
    checkedIn: "已签到",
    checkIn: "上班签到",
    checkOut: "下班签退",
    askSwap: "请人替班",
    swapTo: "请谁替班",
    send: "发送替班申请",
    cancel: "取消",
    noColleagues: "本区域没有可以替班的同事。",
    swapSent: "替班申请已发送，等待值班领导批准。",
    checkedInAt: "已签到（{t} 起）",
    checkedOutAt: "已签退。",
    swaps: "我的替班",
    swapGive: "{day} {duty}：请 {to} 替班",
    swapTake: "{day} {duty}：替 {from} 值班",
    status: { [SwapStatus.REQUESTED]: "待批准", [SwapStatus.APPROVED]: "已批准", [SwapStatus.REJECTED]: "已驳回" } as Record<number, string>,
    today: "今天",
    tomorrow: "明天",
    nextDay: "次日",
    weekdays: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
    date: (month: number, day: number) => `${month}月${day}日`,
    duties: { duty_officer: "值班领导", on_call_grid_leader: "网格长值守", on_call: "值班员" } as Record<string, string>,
  },
  en: {
    loading: "Reading…",
    none: "No shifts of yours in the coming 7 days.",
    now: "On now",
    checkedIn: "Checked in",
    checkIn: "Check in",
    checkOut: "Check out",
    askSwap: "Ask for a swap",
    swapTo: "Who takes it",
    send: "Send the swap request",
    cancel: "Cancel",
    noColleagues: "No colleague of this area can take it.",
    swapSent: "Swap request sent; a duty manager approves it.",
    checkedInAt: "Checked in (since {t})",
    checkedOutAt: "Checked out.",
    swaps: "My swaps",
    swapGive: "{day} {duty}: {to} takes it",
    swapTake: "{day} {duty}: taking it from {from}",
    status: { [SwapStatus.REQUESTED]: "waiting", [SwapStatus.APPROVED]: "approved", [SwapStatus.REJECTED]: "rejected" } as Record<number, string>,
    today: "Today",
    tomorrow: "Tomorrow",
    nextDay: "next day ",
    weekdays: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
    date: (month: number, day: number) => `${day}/${month}`,
    duties: { duty_officer: "Duty officer", on_call_grid_leader: "On-call grid leader", on_call: "On call" } as Record<string, string>,
  },
};

/** The last answer, redrawn when the language changes. */
let shown: MyShiftsResponse | null = null;
/** The shift occurrence whose swap form is open, as "shift/day". */
let swapping: string | null = null;

export function wireShifts(): void {
  byId("shifts-refresh").addEventListener("click", () => void loadShifts());
  byId("calendar-create").addEventListener("click", () => void calendarLink(true));
  byId("calendar-revoke").addEventListener("click", () => void calendarLink(false));
}

/** Makes a new calendar link (shown once, to copy into a calendar app) or stops it. */
async function calendarLink(create: boolean): Promise<void> {
  const zh = language() === "zh";
  const url = byId<HTMLInputElement>("calendar-url");
  const status = byId("calendar-status");
  try {
    if (create) {
      const link = await client.createMyCalendarLink({});
      url.value = `${window.location.origin}${link.path}`;
      status.textContent = zh ? "请复制链接，在日历应用里“订阅日历”。" : "Copy the link into your calendar app as a subscription.";
    } else {
      await client.revokeMyCalendarLink({});
      url.value = "";
      status.textContent = zh ? "日历链接已停用。" : "The calendar link is stopped.";
    }
    url.hidden = url.value === "";
    byId("calendar-url-label").hidden = url.hidden;
  } catch (failure) {
    status.textContent = describe(failure).message;
  }
}

/** Reads the person's shifts again and draws them. */
export async function loadShifts(): Promise<void> {
  const status = byId("shifts-status");
  status.textContent = WORDS[language()].loading;
  try {
    shown = await client.myShifts({ days: 0 });
    status.textContent = "";
  } catch (failure) {
    status.textContent = describe(failure).message;
  }
  drawShifts();
}

export function drawShifts(): void {
  const w = WORDS[language()];
  const list = byId("shifts-list");
  const swaps = byId("shifts-swaps");
  if (shown === null) {
    list.replaceChildren();
    swaps.replaceChildren();
    return;
  }
  const answer = shown;
  list.replaceChildren(...answer.shifts.map((shift) => shiftItem(answer, shift)));
  if (answer.shifts.length === 0) {
    const empty = document.createElement("li");
    empty.className = "hint";
    empty.textContent = w.none;
    list.append(empty);
  }
  swaps.replaceChildren(...answer.swaps.map((swap) => swapItem(answer, swap)));
  byId("shifts-swaps-title").hidden = answer.swaps.length === 0;
}

function shiftItem(answer: MyShiftsResponse, shift: MyShift): HTMLLIElement {
  const w = WORDS[language()];
  const occurrence = shift.occurrence;
  const item = document.createElement("li");
  item.className = "shift";
  if (!occurrence) return item;
  const key = `${occurrence.shiftId}/${occurrence.day}`;
  item.dataset.shiftId = occurrence.shiftId;
  item.dataset.day = String(occurrence.day);
  const title = document.createElement("strong");
  title.textContent = `${dutyName(occurrence.duty)} · ${shift.areaName}`;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = `${dayName(answer, occurrence.startsAtMs)} ${clock(answer, occurrence.startsAtMs)}–${endClock(answer, occurrence.startsAtMs, occurrence.endsAtMs)}`;
  item.append(title, when);
  if (shift.now) {
    const badge = document.createElement("span");
    badge.className = shift.checkedIn ? "badge done" : "badge";
    badge.textContent = shift.checkedIn ? w.checkedIn : w.now;
    item.append(badge);
    const attend = document.createElement("button");
    attend.type = "button";
    attend.className = shift.checkedIn ? "secondary" : "primary";
    attend.id = shift.checkedIn ? "shift-check-out" : "shift-check-in";
    attend.textContent = shift.checkedIn ? w.checkOut : w.checkIn;
    attend.addEventListener("click", () => void attendance(occurrence.shiftId, !shift.checkedIn));
    item.append(attend);
  }
  if (swapping === key) {
    item.append(swapForm(answer, occurrence.shiftId, occurrence.day));
  } else {
    const ask = document.createElement("button");
    ask.type = "button";
    ask.className = "secondary ask-swap";
    ask.textContent = w.askSwap;
    ask.addEventListener("click", () => {
      swapping = key;
      drawShifts();
      document.getElementById("swap-to")?.focus();
    });
    item.append(ask);
  }
  return item;
}

function swapForm(answer: MyShiftsResponse, shiftId: string, day: bigint): HTMLElement {
  const w = WORDS[language()];
  const form = document.createElement("form");
  form.className = "swap-form";
  form.noValidate = true;
  if (answer.colleagues.length === 0) {
    const none = document.createElement("p");
    none.className = "hint";
    none.textContent = w.noColleagues;
    form.append(none);
  } else {
    const label = document.createElement("label");
    label.htmlFor = "swap-to";
    label.textContent = w.swapTo;
    const select = document.createElement("select");
    select.id = "swap-to";
    select.append(...answer.colleagues.map((colleague) => new Option(colleague.name || colleague.agentId, colleague.agentId)));
    const send = document.createElement("button");
    send.type = "submit";
    send.className = "primary";
    send.id = "swap-send";
    send.textContent = w.send;
    form.append(label, select, send);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void askSwap(shiftId, day, select.value);
    });
  }
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = w.cancel;
  cancel.addEventListener("click", () => {
    swapping = null;
    drawShifts();
  });
  form.append(cancel);
  return form;
}

function swapItem(answer: MyShiftsResponse, swap: Swap): HTMLLIElement {
  const w = WORDS[language()];
  const item = document.createElement("li");
  item.dataset.swapId = swap.id;
  item.dataset.status = SwapStatus[swap.status];
  const shift = answer.shifts.find((mine) => mine.occurrence?.shiftId === swap.shiftId);
  const duty = shift?.occurrence ? dutyName(shift.occurrence.duty) : swap.shiftId;
  const name = (id: string): string => answer.colleagues.find((colleague) => colleague.agentId === id)?.name || id;
  const words = swap.fromAgentId === myId() ? w.swapGive : w.swapTake;
  const text = words
    .replace("{day}", dayName(answer, swap.startsAtMs))
    .replace("{duty}", duty)
    .replace("{to}", name(swap.toAgentId))
    .replace("{from}", name(swap.fromAgentId));
  item.textContent = `${text} · ${w.status[swap.status] ?? ""}`;
  return item;
}

async function attendance(shiftId: string, checkIn: boolean): Promise<void> {
  const w = WORDS[language()];
  const status = byId("shifts-status");
  try {
    if (checkIn) {
      const answer = await client.checkInMyShift({ shiftId });
      await loadShifts();
      status.textContent = w.checkedInAt.replace("{t}", shown ? clock(shown, answer.sinceMs) : "");
    } else {
      await client.checkOutMyShift({});
      await loadShifts();
      status.textContent = w.checkedOutAt;
    }
  } catch (failure) {
    status.textContent = describe(failure).message;
  }
}

async function askSwap(shiftId: string, day: bigint, toAgentId: string): Promise<void> {
  const status = byId("shifts-status");
  try {
    await client.requestMySwap({ shiftId, day, toAgentId });
    swapping = null;
    await loadShifts();
    status.textContent = WORDS[language()].swapSent;
  } catch (failure) {
    status.textContent = describe(failure).message;
  }
}

function myId(): string {
  return localStorage.getItem(AGENT_KEY) ?? "";
}

function dutyName(duty: string): string {
  return WORDS[language()].duties[duty] ?? duty;
}

/** The deployment's local time of `ms` as a Date read with getUTC*. */
function local(answer: MyShiftsResponse, ms: bigint): Date {
  return new Date(Number(ms) + answer.utcOffsetMinutes * 60_000);
}

function clock(answer: MyShiftsResponse, ms: bigint): string {
  const at = local(answer, ms);
  return `${String(at.getUTCHours()).padStart(2, "0")}:${String(at.getUTCMinutes()).padStart(2, "0")}`;
}

/** The end's time, marked when it falls on a later local date than the start. */
function endClock(answer: MyShiftsResponse, start: bigint, end: bigint): string {
  const sameDate = local(answer, start).getUTCDate() === local(answer, end).getUTCDate();
  return `${sameDate ? "" : WORDS[language()].nextDay}${clock(answer, end)}`;
}

function dayName(answer: MyShiftsResponse, ms: bigint): string {
  const w = WORDS[language()];
  const at = local(answer, ms);
  const today = local(answer, answer.nowMs);
  const days = Math.round((Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()) -
    Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate())) / 86_400_000);
  if (days === 0) return w.today;
  if (days === 1) return w.tomorrow;
  return `${w.date(at.getUTCMonth() + 1, at.getUTCDate())} ${w.weekdays[at.getUTCDay()]}`;
}
