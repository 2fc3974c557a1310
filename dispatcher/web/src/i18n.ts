// The page's words, Chinese first (the default) and English. Kinds, modes
// and reasons from the API are looked up here by their wire names.

export type Language = "zh" | "en";

const zh = {
  title: "平急 · 指挥一张图",
  logout: "退出",
  loginTitle: "操作员登录",
  loginHelp: "输入管理员发给您的操作员令牌（pjo_…）。令牌只保存在本标签页中，关闭即清除。",
  tokenLabel: "操作员令牌",
  loginButton: "登录",
  loggingIn: "正在登录…",
  tokenEmpty: "请输入操作员令牌。",
  mapTitle: "城市地图",
  mapHelp: "区域按平急模式着色；虚线框为单独设置了应急等级的区域。",
  mapHelpCreate: "点击地图可在该处新建事件；键盘：聚焦地图，方向键移动十字，回车选定。",
  mapLabel: "城市地图：区域、人员与事件",
  figuresTitle: "关键指标",
  openIncidents: "未结事件",
  priorityN: "P{n} 事件",
  available: "可调派人员",
  onRoster: "在册人员",
  createTitle: "新建事件",
  createHint: "在地图上点击事件地点（或聚焦地图后用方向键移动、按回车选定）。",
  lon: "经度",
  lat: "纬度",
  category: "类别",
  priority: "优先级",
  skills: "所需技能",
  headcount: "所需人数",
  description: "说明",
  createButton: "创建事件",
  creating: "正在创建…",
  created: "已创建事件 {id}。",
  placeFirst: "请先在地图上选定地点。",
  feedTitle: "事件动态",
  legend: "图例",
  streamLost: "实时连接中断，{s} 秒后重连：{message}",
  role: "角色",
  roles: ["未指定", "查看员", "调度员", "指挥员", "管理员"],
  modes: ["未指定", "平时", "IV 级（蓝）", "III 级（黄）", "II 级（橙）", "I 级（红）"],
  statuses: ["未知", "可调派", "执行任务", "不在岗"],
  priorities: ["", "1 · 特急", "2 · 紧急", "3 · 较急", "4 · 一般"],
  serviceCentre: "党群服务中心",
  offerLine: "派单待答复",
  assignmentLine: "已接单",
  failed: "操作失败",
  fields: "需要修改的字段：",
  categories: {
    medical: "医疗救助", fire: "火情", flood: "内涝 / 洪水", rescue: "救援", evacuation: "疏散转移",
    elder_care: "老人照护", power_outage: "停电", sandbags: "沙袋运送", public_health: "公共卫生", inspection: "巡查",
  } as Record<string, string>,
  skillNames: {
    first_aid: "急救", elder_care: "老人照护", rescue: "救援", electrician: "电工", driving: "驾驶",
    counselling: "心理疏导", translation: "翻译", firefighting: "消防", nursing: "护理", plumbing: "水暖",
  } as Record<string, string>,
  reasons: {
    TOKEN_MISSING: "没有提供令牌。",
    TOKEN_INVALID: "令牌无效：它不对、已被轮换或已被删除。请检查后重新输入。",
    TOKEN_EXPIRED: "令牌已过期：请管理员签发新令牌。",
    AGENT_TOKEN: "这是一线人员的令牌，不能用于指挥平台：请使用操作员令牌（pjo_…）。",
    NO_OPERATOR_ACCOUNTS: "调度服务器还没有任何操作员账号：请先创建第一个管理员。",
    ROLE_TOO_LOW: "您的角色无权执行此操作。",
    INVALID_ARGUMENT: "有字段填写不正确。",
    NOT_FOUND: "找不到对象。",
    FAILED_PRECONDITION: "当前状态不允许此操作。",
    STORE_UNAVAILABLE: "存储暂时不可用，请稍后重试。",
    SHUTTING_DOWN: "调度服务器正在停止，请稍后重试。",
    LIMIT_EXCEEDED: "超出限制。",
    UNREACHABLE: "无法连接调度服务器。",
  } as Record<string, string>,
  kinds: {
    areas_imported: "导入地图", agents_upserted: "人员更新", agent_status_changed: "人员状态",
    incident_reported: "事件上报", offer_sent: "派单", assigned: "接单", offer_declined: "拒单",
    offer_timed_out: "派单超时", offer_withdrawn: "撤回派单", widened: "扩大派单范围", no_candidates: "无合适人员",
    incident_staffed: "人员到齐", agent_arrived: "到达现场", assignment_completed: "任务完成",
    incident_cancelled: "事件取消", incident_closed: "事件关闭", mode_switched: "平急切换",
    plan_activated: "启动预案", plan_deactivated: "结束预案", callup_issued: "发出召集", checked_in: "报到",
    field_reported: "一线上报", report_accepted: "受理上报", report_merged: "合并上报", report_rejected: "驳回上报",
    grid_staffing_low: "网格在岗不足", grid_staffing_restored: "网格在岗恢复", incident_unstaffable: "无人可派",
    areas_retired: "停用区域", plans_imported: "导入预案", callup_deadline_passed: "召集截止", callup_stood_down: "召集解除",
    agent_tokens_issued: "签发人员令牌", operator_added: "新增操作员", operator_token_rotated: "操作员令牌轮换",
    operator_removed: "删除操作员", operator_token_revoked: "吊销操作员令牌", personal_data_read: "读取个人信息",
  } as Record<string, string>,
};

type Words = typeof zh;

const en: Words = {
  title: "Pingji · Command map",
  logout: "Log out",
  loginTitle: "Operator login",
  loginHelp: "Enter the operator token (pjo_…) an admin gave you. It is kept in this tab only and forgotten when the tab closes.",
  tokenLabel: "Operator token",
  loginButton: "Log in",
  loggingIn: "Logging in…",
  tokenEmpty: "Enter your operator token.",
  mapTitle: "City map",
  mapHelp: "Areas are coloured by mode; a dashed outline marks an area with its own emergency grade.",
  mapHelpCreate: "Click the map to create an incident there; keyboard: focus the map, move the cross with the arrow keys, Enter picks.",
  mapLabel: "City map: areas, people and incidents",
  figuresTitle: "Key figures",
  openIncidents: "Open incidents",
  priorityN: "P{n} incidents",
  available: "People available",
  onRoster: "On the roster",
  createTitle: "New incident",
  createHint: "Click the incident's place on the map (or focus the map, move with the arrow keys and press Enter).",
  lon: "Longitude",
  lat: "Latitude",
  category: "Category",
  priority: "Priority",
  skills: "Skills needed",
  headcount: "People needed",
  description: "Description",
  createButton: "Create incident",
  creating: "Creating…",
  created: "Incident {id} created.",
  placeFirst: "Pick the place on the map first.",
  feedTitle: "Event feed",
  legend: "Legend",
  streamLost: "Live connection lost, reconnecting in {s} s: {message}",
  role: "Role",
  roles: ["unspecified", "viewer", "dispatcher", "commander", "admin"],
  modes: ["unspecified", "normal", "grade IV (blue)", "grade III (yellow)", "grade II (orange)", "grade I (red)"],
  statuses: ["unknown", "available", "busy", "off duty"],
  priorities: ["", "1 · critical", "2 · urgent", "3 · soon", "4 · routine"],
  serviceCentre: "Service centre",
  offerLine: "offer waiting",
  assignmentLine: "accepted",
  failed: "Failed",
  fields: "Fields to correct:",
  categories: {
    medical: "Medical", fire: "Fire", flood: "Flooding", rescue: "Rescue", evacuation: "Evacuation",
    elder_care: "Elder care", power_outage: "Power outage", sandbags: "Sandbags", public_health: "Public health",
    inspection: "Inspection",
  },
  skillNames: {
    first_aid: "First aid", elder_care: "Elder care", rescue: "Rescue", electrician: "Electrician", driving: "Driving",
    counselling: "Counselling", translation: "Translation", firefighting: "Firefighting", nursing: "Nursing",
    plumbing: "Plumbing",
  },
  reasons: {
    TOKEN_MISSING: "No token was given.",
    TOKEN_INVALID: "The token is not valid: wrong, rotated or removed. Check it and enter it again.",
    TOKEN_EXPIRED: "The token has expired: an admin issues a new one.",
    AGENT_TOKEN: "This is a person's token, not for the command map: use an operator token (pjo_…).",
    NO_OPERATOR_ACCOUNTS: "The dispatcher has no operator accounts yet: make the first admin.",
    ROLE_TOO_LOW: "Your role may not do this.",
    INVALID_ARGUMENT: "A field is wrong.",
    NOT_FOUND: "Not found.",
    FAILED_PRECONDITION: "The current state does not allow this.",
    STORE_UNAVAILABLE: "The store is briefly out of reach: try again in a moment.",
    SHUTTING_DOWN: "The dispatcher is stopping: try again in a moment.",
    LIMIT_EXCEEDED: "A limit was exceeded.",
    UNREACHABLE: "Cannot reach the dispatcher.",
  },
  kinds: {
    areas_imported: "map imported", agents_upserted: "people updated", agent_status_changed: "status",
    incident_reported: "incident reported", offer_sent: "offer sent", assigned: "accepted", offer_declined: "declined",
    offer_timed_out: "offer timed out", offer_withdrawn: "offer withdrawn", widened: "widened", no_candidates: "nobody fits",
    incident_staffed: "staffed", agent_arrived: "arrived", assignment_completed: "task completed",
    incident_cancelled: "cancelled", incident_closed: "closed", mode_switched: "mode switched",
    plan_activated: "plan activated", plan_deactivated: "plan ended", callup_issued: "call-up", checked_in: "checked in",
    field_reported: "field report", report_accepted: "report accepted", report_merged: "report merged",
    report_rejected: "report rejected", grid_staffing_low: "grid short of people",
    grid_staffing_restored: "grid staffed again", incident_unstaffable: "nobody can staff it",
    areas_retired: "areas retired", plans_imported: "plans imported", callup_deadline_passed: "call-up deadline",
    callup_stood_down: "call-up stood down", agent_tokens_issued: "people's tokens issued", operator_added: "operator added",
    operator_token_rotated: "operator token rotated", operator_removed: "operator removed",
    operator_token_revoked: "operator token revoked", personal_data_read: "personal data read",
  },
};

let current: Language = "zh";

export function language(): Language {
  return current;
}

export function setLanguage(next: Language): void {
  current = next;
}

export function words(): Words {
  return current === "zh" ? zh : en;
}

/** A word with `{name}` placeholders filled in. */
export function say(key: keyof Words, values: Record<string, string | number> = {}): string {
  const text = words()[key];
  if (typeof text !== "string") {
    return String(key);
  }
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? ""));
}
