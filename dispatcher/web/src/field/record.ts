// 我的记录: the person's own record for the last 7 days (FieldService.MyActivity,
// on their own token): offers and answers, hours, reports, check-ins.

import { describe } from "../errors.js";
import { language } from "./i18n.js";
import { byId, client } from "./state.js";

const WORDS = {
  zh: {
    offers: "收到派单", accepted: "接受", declined: "拒绝", timedOut: "超时未答",
    acceptP50: "接单用时（中位）", arriveP50: "到场用时（中位）", taskH: "任务时长", dutyH: "在岗时长",
    reports: "上报（受理/合并/驳回）", callups: "召集（签到/未到）", loading: "读取中…", hours: "小时", seconds: "秒",
  },
  en: {
    offers: "Offers", accepted: "Accepted", declined: "Declined", timedOut: "Let lapse",
    acceptP50: "Time to accept (median)", arriveP50: "Time to arrive (median)", taskH: "On tasks", dutyH: "On duty",
    reports: "Reports (accepted/merged/rejected)", callups: "Call-ups (checked in/missed)", loading: "Reading…", hours: "h", seconds: "s",
  },
};

export function wireRecord(): void {
  byId("record-show").addEventListener("click", () => void show());
}

async function show(): Promise<void> {
  const w = WORDS[language()];
  const status = byId("record-status");
  const list = byId("record-figures");
  status.textContent = w.loading;
  try {
    // 0 and 0: the last 7 days on the dispatcher's clock.
    const answer = await client.myActivity({ fromMs: 0n, toMs: 0n });
    const me = answer.person;
    status.textContent = "";
    if (!me) return;
    const seconds = (value: number | undefined): string => (value === undefined ? "–" : `${Math.round(value)} ${w.seconds}`);
    const rows: [string, string][] = [
      [w.offers, `${me.offers}`],
      [w.accepted, `${me.accepted}`],
      [w.declined, `${me.declined}`],
      [w.timedOut, `${me.timedOut}`],
      [w.acceptP50, seconds(me.medianAcceptS)],
      [w.arriveP50, seconds(me.medianArriveS)],
      [w.taskH, `${me.onAssignmentH.toFixed(1)} ${w.hours}`],
      [w.dutyH, `${me.onDutyH.toFixed(1)} ${w.hours}`],
      [w.reports, `${me.reports} (${me.reportsAccepted}/${me.reportsMerged}/${me.reportsRejected})`],
      [w.callups, `${me.callups} (${me.checkedIn}/${me.missedCallups})`],
    ];
    list.replaceChildren(
      ...rows.map(([term, value]) => {
        const row = document.createElement("div");
        const name = document.createElement("dt");
        name.textContent = term;
        const figure = document.createElement("dd");
        figure.textContent = value;
        row.append(name, figure);
        return row;
      }),
    );
  } catch (failure) {
    status.textContent = describe(failure).message;
  }
}
