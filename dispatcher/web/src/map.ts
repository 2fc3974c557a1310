// The city drawn in SVG: the areas are the base map (no internet needed;
// a deployment's own tile server may lie under them), with service centres
// and their 15-minute circles, people and incidents on top. Shapes are made
// once per map; people and incidents are redrawn in one batch per animation
// frame, whatever number of changes arrived in between. Many people are
// drawn as clusters (one mark per patch of the screen with their count),
// never as one SVG node each.

import { AgentStatus, AreaLevel, IncidentStatus, Mode } from "./gen/pingji/v1/pingji_pb.js";
import type { Agent, Area, Depot, Incident, ServiceCentre, Shelter } from "./gen/pingji/v1/pingji_pb.js";
import { say, words } from "./i18n.js";
import { metresBetween } from "./figures.js";
import { secondsLeft } from "./clock.js";

const SVG = "http://www.w3.org/2000/svg";
/** The map's width in SVG units; its height follows the city's shape. */
const WIDTH = 1000;
const PADDING = 12;
/** Above this many people in view, they are drawn as clusters. */
const CLUSTER_ABOVE = 300;
/** A cluster gathers the people in a square this many screen pixels wide. */
const CLUSTER_CELL_PX = 36;
/** How far in the map zooms: a 16th of the city's width. */
const ZOOM_MAX = 16;
/** Walking time to a service centre that the 15-minute circle stands for. */
const SERVICE_CIRCLE_S = 15 * 60;
/** Tiles drawn at most at once, whatever the zoom. */
const TILES_MAX = 64;

/** Fill of a leaf area by the mode in force there. */
export const MODE_COLOURS: Record<number, string> = {
  [Mode.UNSPECIFIED]: "#dde6ee",
  [Mode.NORMAL]: "#dde6ee",
  [Mode.EMERGENCY_IV]: "#4f8fe0",
  [Mode.EMERGENCY_III]: "#f2cc30",
  [Mode.EMERGENCY_II]: "#f08a24",
  [Mode.EMERGENCY_I]: "#d93025",
};
export const PRIORITY_COLOURS = ["#b71c1c", "#b71c1c", "#e65100", "#f9a825", "#1565c0"];
export const STATUS_COLOURS: Record<number, string> = {
  [AgentStatus.UNSPECIFIED]: "#7f8c8d",
  [AgentStatus.AVAILABLE]: "#1b8a3a",
  [AgentStatus.BUSY]: "#d35400",
  [AgentStatus.OFF_DUTY]: "#95a5a6",
};

function element<K extends keyof SVGElementTagNameMap>(name: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function overlaps(a: Box, b: Box): boolean {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

/** Lon/lat to SVG units: equirectangular, scaled at the city's middle latitude. */
class Projection {
  constructor(
    private readonly west: number,
    private readonly north: number,
    private readonly xScale: number,
    private readonly yScale: number,
  ) {}

  static fit(points: { lon: number; lat: number }[]): { projection: Projection; height: number } {
    let west = Infinity, east = -Infinity, south = Infinity, north = -Infinity;
    for (const point of points) {
      west = Math.min(west, point.lon);
      east = Math.max(east, point.lon);
      south = Math.min(south, point.lat);
      north = Math.max(north, point.lat);
    }
    if (!Number.isFinite(west) || east === west || north === south) {
      return { projection: new Projection(0, 0, 1, 1), height: WIDTH * 0.6 };
    }
    const shrink = Math.cos((((north + south) / 2) * Math.PI) / 180);
    const scale = (WIDTH - 2 * PADDING) / ((east - west) * shrink);
    const height = (north - south) * scale + 2 * PADDING;
    return { projection: new Projection(west, north, scale * shrink, scale), height };
  }

  point(lon: number, lat: number): [number, number] {
    return [PADDING + (lon - this.west) * this.xScale, PADDING + (this.north - lat) * this.yScale];
  }

  lonLat(x: number, y: number): { lon: number; lat: number } {
    return { lon: this.west + (x - PADDING) / this.xScale, lat: this.north - (y - PADDING) / this.yScale };
  }

  /** A distance on the ground in SVG units (a degree of latitude is about 111.32 km). */
  metres(metres: number): number {
    return (metres / 111_320) * this.yScale;
  }
}

/** What the map tells the page. */
export interface MapHandlers {
  /** A place was picked (click or Enter) in `areaId`'s shape, if any; says whether the page takes it. */
  pick(lon: number, lat: number, areaId: string): boolean;
  selectIncident(incidentId: string): void;
  selectPerson(agentId: string): void;
}

interface View {
  x: number;
  y: number;
  width: number;
}

export class CityMap {
  private projection = new Projection(0, 0, 1, 1);
  private height = WIDTH * 0.6;
  private view: View = { x: 0, y: 0, width: WIDTH };
  private readonly tileLayer: SVGGElement;
  private readonly areaLayer: SVGGElement;
  private readonly labelLayer: SVGGElement;
  private readonly centreLayer: SVGGElement;
  private readonly depotLayer: SVGGElement;
  private readonly shelterLayer: SVGGElement;
  private readonly linkLayer: SVGGElement;
  private readonly peopleLayer: SVGGElement;
  private readonly incidentLayer: SVGGElement;
  private readonly pickMarker: SVGGElement;
  private areaShapes = new Map<string, SVGPathElement>();
  private leaves = new Set<string>();
  private centres: ServiceCentre[] = [];
  private depots: Depot[] = [];
  private shelters: Shelter[] = [];
  private walkMetresPerSecond = 0;
  private tileUrl = "";
  private drawPending = false;
  /** The incidents' marks need drawing again (an incident or the view changed). */
  private incidentsChanged = true;
  people = new Map<string, Agent>();
  incidents = new Map<string, Incident>();
  /** The place picked for a new incident, in SVG units. */
  private picked: [number, number] | null = null;
  /** A drag in progress (it pans the map), and whether the last press moved. */
  private drag: { clientX: number; clientY: number; view: View } | null = null;
  private dragged = false;

  constructor(
    private readonly svg: SVGSVGElement,
    private readonly handlers: MapHandlers,
  ) {
    this.tileLayer = element("g", { class: "tiles" });
    this.areaLayer = element("g", { class: "areas" });
    this.labelLayer = element("g", { class: "labels" });
    this.centreLayer = element("g", { class: "centres" });
    this.depotLayer = element("g", { class: "depots" });
    this.shelterLayer = element("g", { class: "shelters" });
    this.linkLayer = element("g", { class: "links" });
    this.peopleLayer = element("g", { class: "people" });
    this.incidentLayer = element("g", { class: "incidents" });
    this.pickMarker = element("g", { class: "pick-marker", visibility: "hidden" });
    this.pickMarker.append(element("circle", { class: "pick", r: 10 }), element("path", { class: "pick", d: "M-16 0H16M0 -16V16" }));
    // Names lie under the dots: a person or an incident is never hidden by a name.
    svg.append(this.tileLayer, this.areaLayer, this.labelLayer, this.centreLayer, this.depotLayer, this.shelterLayer, this.linkLayer, this.peopleLayer, this.incidentLayer, this.pickMarker);
    this.applyView();
    this.listen();
    // Offers' countdowns move every second without redrawing the map.
    setInterval(() => this.tick(), 1000);
  }

  /** Draws `areas` (with geometry) and `centres` as the base map. */
  setAreas(areas: Area[], centres: ServiceCentre[]): void {
    const points = areas.flatMap((area) => area.polygons.flatMap((polygon) => polygon.rings[0]?.points ?? []));
    const fitted = Projection.fit(points);
    this.projection = fitted.projection;
    this.height = fitted.height;
    this.view = { x: 0, y: 0, width: WIDTH };
    this.svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    const parents = new Set(areas.map((area) => area.parentId));
    this.leaves = new Set(areas.filter((area) => !parents.has(area.id)).map((area) => area.id));
    // Coarse levels first, so that finer ones lie on top.
    const ordered = [...areas].filter((area) => area.level !== AreaLevel.CITY).sort((a, b) => a.level - b.level);
    this.areaShapes.clear();
    const shapes: SVGElement[] = [];
    const labels: SVGElement[] = [];
    const placed: Box[] = [];
    for (const area of ordered) {
      const path = element("path", { d: this.pathOf(area), class: `area level-${area.level}`, "fill-rule": "evenodd" });
      path.dataset.areaId = area.id;
      const title = element("title", {});
      title.textContent = area.name;
      path.append(title);
      this.areaShapes.set(area.id, path);
      shapes.push(path);
      const label = this.labelOf(area, placed);
      if (label) {
        labels.push(label);
      }
    }
    this.areaLayer.replaceChildren(...shapes);
    this.labelLayer.replaceChildren(...labels);
    this.centres = centres;
    this.drawCentres();
    this.drawDepots();
    this.drawShelters();
    this.setModes(areas);
    this.applyView();
  }

  /** The walking speed the 15-minute circles stand for (from the Coverage answer). */
  setWalkingSpeed(metresPerSecond: number): void {
    this.walkMetresPerSecond = metresPerSecond;
    this.drawCentres();
  }

  /** A tile server's URL with {z}, {x} and {y}, drawn under the areas; "" for none. */
  setTiles(url: string): void {
    this.tileUrl = url;
    this.drawTiles();
  }

  private drawCentres(): void {
    const radius = this.projection.metres(this.walkMetresPerSecond * SERVICE_CIRCLE_S);
    this.centreLayer.replaceChildren(
      ...this.centres.flatMap((centre) => {
        if (!centre.location) {
          return [];
        }
        const [x, y] = this.projection.point(centre.location.lon, centre.location.lat);
        const group = element("g", { class: "centre-group" });
        group.dataset.centreId = centre.id;
        if (radius > 0) {
          group.append(element("circle", { class: "reach", cx: x.toFixed(1), cy: y.toFixed(1), r: radius.toFixed(1) }));
        }
        const square = element("rect", { class: "centre", x: x - 4, y: y - 4, width: 8, height: 8 });
        const title = element("title", {});
        title.textContent = `${words().serviceCentre} · ${centre.name}`;
        square.append(title);
        group.append(square);
        return [group];
      }),
    );
  }

  /** Supply depots: a diamond each, red when an item is below its minimum. */
  setDepots(depots: Depot[]): void {
    this.depots = depots;
    this.drawDepots();
  }

  private drawDepots(): void {
    this.depotLayer.replaceChildren(
      ...this.depots.flatMap((depot) => {
        if (!depot.location) {
          return [];
        }
        const [x, y] = this.projection.point(depot.location.lon, depot.location.lat);
        const low = depot.stock.some((stock) => stock.low);
        const diamond = element("path", { class: low ? "depot low" : "depot", d: `M${x.toFixed(1)} ${(y - 7).toFixed(1)}l7 7l-7 7l-7 -7z` });
        diamond.dataset.depotId = depot.id;
        const title = element("title", {});
        const stock = depot.stock.map((item) => `${item.itemId} ${item.available}/${item.onHand}${item.low ? ` (${words().lowStock})` : ""}`);
        const units = depot.units.length > 0 ? [`${depot.units.length} units`] : [];
        title.textContent = `${words().depot} · ${depot.name} · ${[...stock, ...units].join(", ")}`;
        diamond.append(title);
        return [diamond];
      }),
    );
  }

  /** Shelters: a square each (dashed when closed) with a bar under it
   * filled to the share of places taken (people in plus reserved), orange
   * when nearly full and red when full. */
  setShelters(shelters: Shelter[]): void {
    this.shelters = shelters;
    this.drawShelters();
  }

  private drawShelters(): void {
    this.shelterLayer.replaceChildren(
      ...this.shelters.flatMap((shelter) => {
        if (!shelter.location) {
          return [];
        }
        const [x, y] = this.projection.point(shelter.location.lon, shelter.location.lat);
        const group = element("g", {});
        group.dataset.shelterId = shelter.id;
        const square = element("rect", { class: shelter.open ? "shelter" : "shelter closed", x: (x - 7).toFixed(1), y: (y - 7).toFixed(1), width: 14, height: 14 });
        const taken = shelter.capacity > 0 ? Math.min(1, (shelter.occupied + shelter.reserved) / shelter.capacity) : 0;
        const level = shelter.level === 3 ? " full" : shelter.level === 2 ? " nearly-full" : "";
        const background = element("rect", { class: "shelter closed", x: (x - 7).toFixed(1), y: (y + 9).toFixed(1), width: 14, height: 3 });
        const bar = element("rect", { class: `shelter-bar${level}`, x: (x - 7).toFixed(1), y: (y + 9).toFixed(1), width: (14 * taken).toFixed(1), height: 3 });
        const title = element("title", {});
        const state = shelter.open ? words().shelterOpen : words().shelterClosed;
        const occupancy = say("shelterIn", { in: String(shelter.occupied), reserved: String(shelter.reserved), capacity: String(shelter.capacity) });
        const alert = words().shelterLevels[shelter.level] ?? "";
        title.textContent = `${words().shelter} · ${shelter.name} · ${state} · ${occupancy}${alert ? ` · ${alert}` : ""}`;
        group.append(title, square, background, bar);
        return [group];
      }),
    );
  }

  /** Colours areas by their modes: leaves are filled by the mode in force,
   * and an area with a grade of its own gets a dashed outline of its colour. */
  setModes(areas: Area[]): void {
    for (const area of areas) {
      const shape = this.areaShapes.get(area.id);
      if (!shape) {
        continue;
      }
      shape.setAttribute("fill", this.leaves.has(area.id) ? MODE_COLOURS[area.effectiveMode] ?? MODE_COLOURS[Mode.NORMAL] : "none");
      const ownGrade = area.mode > Mode.NORMAL;
      shape.classList.toggle("own-mode", ownGrade);
      // A style, not an attribute: the stylesheet's stroke of the level
      // would win over a presentation attribute.
      shape.style.stroke = ownGrade ? MODE_COLOURS[area.mode] : "";
      shape.dataset.mode = String(area.effectiveMode);
      const title = shape.querySelector("title");
      if (title) {
        title.textContent = `${area.name} · ${words().modes[area.effectiveMode] ?? ""}`;
      }
    }
  }

  /** Marks the grids with fewer people available than their emergency minimum. */
  setShortStaffed(gridIds: Set<string>): void {
    for (const [id, shape] of this.areaShapes) {
      shape.classList.toggle("short-staffed", gridIds.has(id));
    }
  }

  private pathOf(area: Area): string {
    const parts: string[] = [];
    for (const polygon of area.polygons) {
      for (const ring of polygon.rings) {
        const points = ring.points.map((point) => this.projection.point(point.lon, point.lat));
        if (points.length < 3) {
          continue;
        }
        parts.push(`M${points.map(([x, y]) => `${x.toFixed(1)} ${y.toFixed(1)}`).join("L")}Z`);
      }
    }
    return parts.join("");
  }

  /** A name at the area's centroid, when it fits inside the area's width
   * and clear of the names placed before it (coarser levels first). */
  private labelOf(area: Area, placed: Box[]): SVGTextElement | null {
    if (!area.centroid || area.name === "") {
      return null;
    }
    const sizes: Record<number, number> = { [AreaLevel.DISTRICT]: 22, [AreaLevel.STREET]: 15, [AreaLevel.COMMUNITY]: 12, [AreaLevel.GRID]: 9 };
    const size = sizes[area.level];
    if (size === undefined) {
      return null;
    }
    let west = Infinity, east = -Infinity;
    for (const polygon of area.polygons) {
      for (const point of polygon.rings[0]?.points ?? []) {
        const [x] = this.projection.point(point.lon, point.lat);
        west = Math.min(west, x);
        east = Math.max(east, x);
      }
    }
    // CJK characters are about one em wide.
    const width = area.name.length * size * 1.05;
    if (east - west < width * 1.1) {
      return null;
    }
    const [x, y] = this.projection.point(area.centroid.lon, area.centroid.lat);
    const box: Box = { left: x - width / 2, right: x + width / 2, top: y - size * 0.7, bottom: y + size * 0.7 };
    if (placed.some((other) => overlaps(box, other))) {
      return null;
    }
    placed.push(box);
    const label = element("text", { class: `label level-${area.level}`, x: x.toFixed(1), y: y.toFixed(1) });
    label.textContent = area.name;
    return label;
  }

  /** People already shown who moved: the i-th of `ids` is now at
   * (`lons[i]`, `lats[i]`), as they reported at `atMs[i]`. */
  move(ids: string[], lons: number[], lats: number[], atMs: bigint[]): void {
    for (let index = 0; index < ids.length; index++) {
      const agent = this.people.get(ids[index]);
      if (!agent?.location) {
        continue;
      }
      agent.location.lon = lons[index];
      agent.location.lat = lats[index];
      agent.locationAtMs = atMs[index];
    }
  }

  /** Redraws people and incidents at the next frame (once, however many changes). */
  scheduleDraw(): void {
    this.incidentsChanged = true;
    this.schedulePeopleDraw();
  }

  /** Redraws the people (and the lines to them) at the next frame; the
   * incidents' marks stay as they are unless they changed meanwhile. */
  schedulePeopleDraw(): void {
    if (this.drawPending) {
      return;
    }
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.draw();
    });
  }

  /** How much the view is zoomed in: 1 for the whole city. */
  private zoom(): number {
    return WIDTH / this.view.width;
  }

  /** Screen pixels per SVG unit, as drawn now. */
  private pixelsPerUnit(): number {
    const box = this.svg.getBoundingClientRect();
    const viewHeight = this.view.width * (this.height / WIDTH);
    const scale = Math.min(box.width / this.view.width, box.height / viewHeight);
    return Number.isFinite(scale) && scale > 0 ? scale : 1;
  }

  private inView(x: number, y: number): boolean {
    const viewHeight = this.view.width * (this.height / WIDTH);
    return x >= this.view.x && x <= this.view.x + this.view.width && y >= this.view.y && y <= this.view.y + viewHeight;
  }

  private draw(): void {
    const unit = 1 / this.zoom();
    const located: [Agent, number, number][] = [];
    for (const agent of this.people.values()) {
      // Located without a session: the app is closed but the phone takes
      // notifications, so the person is still offered tasks.
      if (!agent.location) {
        continue;
      }
      const [x, y] = this.projection.point(agent.location.lon, agent.location.lat);
      if (this.inView(x, y)) {
        located.push([agent, x, y]);
      }
    }
    this.svg.dataset.people = String(located.length);
    if (located.length > CLUSTER_ABOVE) {
      this.peopleLayer.replaceChildren(...this.clusters(located, unit));
    } else {
      this.peopleLayer.replaceChildren(...located.map(([agent, x, y]) => this.dot(agent, x, y, unit)));
    }
    if (this.incidentsChanged) {
      this.incidentsChanged = false;
      this.drawIncidents(unit);
    }
    this.linkLayer.replaceChildren(...this.links(unit));
    this.tick();
  }

  private drawIncidents(unit: number): void {
    const marks: SVGElement[] = [];
    for (const incident of this.incidents.values()) {
      if (!incident.location) {
        continue;
      }
      const [x, y] = this.projection.point(incident.location.lon, incident.location.lat);
      const mark = element("circle", {
        class: "incident",
        cx: x.toFixed(1),
        cy: y.toFixed(1),
        r: ((9 - Math.min(4, Math.max(1, incident.priority))) * unit).toFixed(2),
        fill: PRIORITY_COLOURS[incident.priority] ?? PRIORITY_COLOURS[4],
      });
      mark.dataset.incidentId = incident.id;
      mark.dataset.status = IncidentStatus[incident.status] ?? "";
      mark.classList.toggle("staffed", incident.status === IncidentStatus.STAFFED);
      mark.classList.toggle("reported", incident.status === IncidentStatus.REPORTED);
      const title = element("title", {});
      title.textContent = `${incident.id} · ${words().categories[incident.category] ?? incident.category} · P${incident.priority}`;
      mark.append(title);
      marks.push(mark);
    }
    this.incidentLayer.replaceChildren(...marks);
  }

  private dot(agent: Agent, x: number, y: number, unit: number): SVGElement {
    // A person holding a task is busy with it, whatever status their app last set.
    const shown = agent.currentIncidentId !== "" ? AgentStatus.BUSY : agent.status;
    const dot = element("circle", { class: agent.connected ? "person" : "person away", cx: x.toFixed(1), cy: y.toFixed(1), r: (3.5 * unit).toFixed(2), fill: STATUS_COLOURS[shown] ?? "#7f8c8d" });
    dot.dataset.agentId = agent.spec?.id ?? "";
    dot.dataset.status = AgentStatus[shown] ?? "";
    // Where the server says the person is (to about 1 km for a viewer).
    dot.dataset.lon = agent.location?.lon.toFixed(6) ?? "";
    dot.dataset.lat = agent.location?.lat.toFixed(6) ?? "";
    const title = element("title", {});
    const away = agent.connected ? "" : ` · ${say("awayReachable")}`;
    title.textContent = `${agent.spec?.name ?? agent.spec?.id ?? ""} · ${words().statuses[shown] ?? ""}${away}`;
    dot.append(title);
    return dot;
  }

  /** One mark per square of the screen with the people in it: their count,
   * green when some of them are available. */
  private clusters(located: [Agent, number, number][], unit: number): SVGElement[] {
    const cell = CLUSTER_CELL_PX / this.pixelsPerUnit();
    const cells = new Map<string, { count: number; available: number; x: number; y: number }>();
    for (const [agent, x, y] of located) {
      const key = `${Math.floor(x / cell)}:${Math.floor(y / cell)}`;
      const found = cells.get(key) ?? { count: 0, available: 0, x: 0, y: 0 };
      found.count += 1;
      found.x += x;
      found.y += y;
      if (agent.status === AgentStatus.AVAILABLE && agent.currentIncidentId === "") {
        found.available += 1;
      }
      cells.set(key, found);
    }
    const marks: SVGElement[] = [];
    for (const found of cells.values()) {
      const x = found.x / found.count;
      const y = found.y / found.count;
      const radius = (7 + Math.min(11, Math.log10(found.count) * 4)) * unit;
      const group = element("g", { class: found.available > 0 ? "cluster" : "cluster busy", transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})` });
      group.dataset.count = String(found.count);
      group.append(element("circle", { r: radius.toFixed(2) }));
      const count = element("text", { "font-size": (9 * unit).toFixed(2) });
      count.textContent = found.count >= 1000 ? `${(found.count / 1000).toFixed(1)}k` : String(found.count);
      const title = element("title", {});
      title.textContent = say("clusterTitle", { n: found.count, available: found.available });
      group.append(count, title);
      marks.push(group);
    }
    return marks;
  }

  /** Lines from people to incidents: dashed for an offer waiting for an
   * answer (with its countdown), solid for an accepted task not completed
   * yet (with the distance left). */
  private links(unit: number): SVGElement[] {
    const lines: SVGElement[] = [];
    const line = (kind: "offer" | "assignment", agentId: string, incident: Incident): [number, number] | null => {
      const agent = this.people.get(agentId);
      if (!agent?.location || !incident.location) {
        return null;
      }
      const [x1, y1] = this.projection.point(agent.location.lon, agent.location.lat);
      const [x2, y2] = this.projection.point(incident.location.lon, incident.location.lat);
      const link = element("line", { class: `link ${kind}`, x1: x1.toFixed(1), y1: y1.toFixed(1), x2: x2.toFixed(1), y2: y2.toFixed(1) });
      link.dataset.agentId = agentId;
      link.dataset.incidentId = incident.id;
      link.style.strokeWidth = String(2 * unit);
      const title = element("title", {});
      title.textContent = `${agentId} → ${incident.id} · ${say("distanceLeft", { km: (metresBetween(agent.location, incident.location) / 1000).toFixed(2) })}`;
      link.append(title);
      lines.push(link);
      return [(x1 + x2) / 2, (y1 + y2) / 2];
    };
    for (const incident of this.incidents.values()) {
      for (const offer of incident.openOffers) {
        const middle = line("offer", offer.agentId, incident);
        if (middle && offer.deadlineMs > 0n) {
          const countdown = element("text", { class: "countdown", x: middle[0].toFixed(1), y: middle[1].toFixed(1), "font-size": (10 * unit).toFixed(2) });
          countdown.dataset.deadline = String(offer.deadlineMs);
          countdown.dataset.agentId = offer.agentId;
          lines.push(countdown);
        }
      }
      for (const assignment of incident.assignments) {
        if (assignment.completedAtMs === 0n) {
          line("assignment", assignment.agentId, incident);
        }
      }
    }
    return lines;
  }

  /** Seconds left to answer each offer drawn. */
  private tick(): void {
    // On the dispatcher's clock, which runs faster in a drill's demo.
    for (const countdown of this.linkLayer.querySelectorAll<SVGTextElement>("text.countdown")) {
      countdown.textContent = `${secondsLeft(Number(countdown.dataset.deadline))}s`;
    }
  }

  /** Shows the view: the viewBox, the zoom for the stylesheet, the tiles under it. */
  private applyView(): void {
    const viewHeight = this.view.width * (this.height / WIDTH);
    this.svg.setAttribute("viewBox", `${this.view.x.toFixed(1)} ${this.view.y.toFixed(1)} ${this.view.width.toFixed(1)} ${viewHeight.toFixed(1)}`);
    this.svg.style.setProperty("--zoom", this.zoom().toFixed(3));
    this.svg.dataset.zoom = this.zoom().toFixed(2);
    this.drawTiles();
    this.scheduleDraw();
  }

  /** Zooms by `factor` keeping the point (x, y) where it is on the screen. */
  zoomAt(factor: number, x: number, y: number): void {
    const width = Math.min(WIDTH, Math.max(WIDTH / ZOOM_MAX, this.view.width / factor));
    const kept = width / this.view.width;
    this.moveTo(x - (x - this.view.x) * kept, y - (y - this.view.y) * kept, width);
  }

  /** Zooms in or out around the middle of the view (or the picked place). */
  zoomBy(factor: number): void {
    const viewHeight = this.view.width * (this.height / WIDTH);
    const [x, y] = this.picked ?? [this.view.x + this.view.width / 2, this.view.y + viewHeight / 2];
    this.zoomAt(factor, x, y);
  }

  /** The whole city. */
  resetView(): void {
    this.moveTo(0, 0, WIDTH);
  }

  private moveTo(x: number, y: number, width: number): void {
    const viewHeight = width * (this.height / WIDTH);
    this.view = {
      x: Math.min(WIDTH - width, Math.max(0, x)),
      y: Math.min(this.height - viewHeight, Math.max(0, y)),
      width,
    };
    this.applyView();
  }

  /** Tiles of the deployment's tile server (web mercator, 256 px) for the
   * view, each placed by its corners: over a city, mercator and this map's
   * projection differ by far less than a pixel inside one tile. */
  private drawTiles(): void {
    if (this.tileUrl === "") {
      this.tileLayer.replaceChildren();
      return;
    }
    const viewHeight = this.view.width * (this.height / WIDTH);
    const northWest = this.projection.lonLat(this.view.x, this.view.y);
    const southEast = this.projection.lonLat(this.view.x + this.view.width, this.view.y + viewHeight);
    const pixels = this.view.width * this.pixelsPerUnit();
    const span = Math.max(1e-9, southEast.lon - northWest.lon);
    const z = Math.min(19, Math.max(0, Math.round(Math.log2((360 * pixels) / (256 * span)))));
    const n = 2 ** z;
    const tileX = (lon: number): number => Math.floor(((lon + 180) / 360) * n);
    const tileY = (lat: number): number => {
      const radians = (lat * Math.PI) / 180;
      return Math.floor(((1 - Math.log(Math.tan(radians) + 1 / Math.cos(radians)) / Math.PI) / 2) * n);
    };
    const lonOf = (x: number): number => (x / n) * 360 - 180;
    const latOf = (y: number): number => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
    const tiles: SVGElement[] = [];
    for (let x = tileX(northWest.lon); x <= tileX(southEast.lon); x++) {
      for (let y = tileY(northWest.lat); y <= tileY(southEast.lat); y++) {
        if (tiles.length >= TILES_MAX) {
          break;
        }
        const [left, top] = this.projection.point(lonOf(x), latOf(y));
        const [right, bottom] = this.projection.point(lonOf(x + 1), latOf(y + 1));
        const href = this.tileUrl.replace("{z}", String(z)).replace("{x}", String(x)).replace("{y}", String(y));
        tiles.push(element("image", { href, x: left.toFixed(2), y: top.toFixed(2), width: (right - left).toFixed(2), height: (bottom - top).toFixed(2), preserveAspectRatio: "none" }));
      }
    }
    this.tileLayer.replaceChildren(...tiles);
  }

  private svgPoint(clientX: number, clientY: number): [number, number] | null {
    const matrix = this.svg.getScreenCTM();
    if (!matrix) {
      return null;
    }
    const point = new DOMPoint(clientX, clientY).matrixTransform(matrix.inverse());
    return [point.x, point.y];
  }

  /** A click picks the place of a new incident (or opens what was clicked);
   * a drag pans, the wheel zooms; the keyboard does all of it too. */
  private listen(): void {
    this.svg.addEventListener("pointerdown", (event) => {
      if (event.button === 0) {
        this.drag = { clientX: event.clientX, clientY: event.clientY, view: { ...this.view } };
        this.dragged = false;
      }
    });
    this.svg.addEventListener("pointermove", (event) => {
      if (!this.drag || (event.buttons & 1) === 0) {
        return;
      }
      const dx = event.clientX - this.drag.clientX;
      const dy = event.clientY - this.drag.clientY;
      if (!this.dragged && Math.hypot(dx, dy) < 5) {
        return;
      }
      this.dragged = true;
      const scale = this.pixelsPerUnit();
      this.moveTo(this.drag.view.x - dx / scale, this.drag.view.y - dy / scale, this.drag.view.width);
    });
    this.svg.addEventListener("pointerup", () => {
      this.drag = null;
    });
    this.svg.addEventListener(
      "wheel",
      (event) => {
        const point = this.svgPoint(event.clientX, event.clientY);
        if (!point) {
          return;
        }
        event.preventDefault();
        this.zoomAt(event.deltaY < 0 ? 1.25 : 0.8, point[0], point[1]);
      },
      { passive: false },
    );
    this.svg.addEventListener("click", (event) => {
      if (this.dragged) {
        this.dragged = false;
        return;
      }
      const target = event.target instanceof Element ? event.target : null;
      // A click on an incident or a person opens it rather than picking a place.
      const incident = target?.closest<SVGElement>("circle.incident");
      if (incident?.dataset.incidentId) {
        this.handlers.selectIncident(incident.dataset.incidentId);
        return;
      }
      const person = target?.closest<SVGElement>("circle.person");
      if (person?.dataset.agentId) {
        this.handlers.selectPerson(person.dataset.agentId);
        return;
      }
      const point = this.svgPoint(event.clientX, event.clientY);
      if (!point) {
        return;
      }
      if (target?.closest("g.cluster")) {
        this.zoomAt(2.5, point[0], point[1]);
        return;
      }
      this.pick(point[0], point[1], target?.closest<SVGElement>("path.area")?.dataset.areaId ?? "");
    });
    this.svg.addEventListener("keydown", (event) => {
      const zooms: Record<string, number> = { "+": 1.5, "=": 1.5, "-": 1 / 1.5, _: 1 / 1.5 };
      if (zooms[event.key] !== undefined) {
        event.preventDefault();
        this.zoomBy(zooms[event.key]);
        return;
      }
      if (event.key === "0") {
        event.preventDefault();
        this.resetView();
        return;
      }
      const step = (event.shiftKey ? 50 : 10) / this.zoom();
      const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      const move = moves[event.key];
      const viewHeight = this.view.width * (this.height / WIDTH);
      if (!this.svg.classList.contains("may-create")) {
        // Nothing to pick: the arrows pan the map.
        if (move) {
          event.preventDefault();
          this.moveTo(this.view.x + move[0] * 3, this.view.y + move[1] * 3, this.view.width);
        }
        return;
      }
      const [x, y] = this.picked ?? [this.view.x + this.view.width / 2, this.view.y + viewHeight / 2];
      if (move) {
        event.preventDefault();
        const next: [number, number] = [Math.min(WIDTH, Math.max(0, x + move[0])), Math.min(this.height, Math.max(0, y + move[1]))];
        this.mark(next[0], next[1]);
        if (!this.inView(next[0], next[1])) {
          // The view follows the cross.
          this.moveTo(next[0] - this.view.width / 2, next[1] - viewHeight / 2, this.view.width);
        }
      } else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.pick(x, y, this.areaAt(x, y));
      }
    });
  }

  /** The finest area whose shape holds the point (x, y), or "". */
  private areaAt(x: number, y: number): string {
    const matrix = this.svg.getScreenCTM();
    if (!matrix) {
      return "";
    }
    const screen = new DOMPoint(x, y).matrixTransform(matrix);
    for (const found of document.elementsFromPoint(screen.x, screen.y)) {
      if (found instanceof SVGPathElement && found.classList.contains("area") && found.dataset.areaId) {
        return found.dataset.areaId;
      }
    }
    return "";
  }

  private mark(x: number, y: number): void {
    this.picked = [x, y];
    this.pickMarker.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)}) scale(${(1 / this.zoom()).toFixed(3)})`);
    this.pickMarker.setAttribute("visibility", "visible");
  }

  private pick(x: number, y: number, areaId: string): void {
    const { lon, lat } = this.projection.lonLat(x, y);
    if (this.handlers.pick(lon, lat, areaId)) {
      this.mark(x, y);
    }
  }

  /** Hides the pick marker (the incident created there shows instead). */
  clearPick(): void {
    this.picked = null;
    this.pickMarker.setAttribute("visibility", "hidden");
  }

  /** Moves the pick marker to a place typed into the form. */
  showPick(lon: number, lat: number): void {
    const [x, y] = this.projection.point(lon, lat);
    this.mark(x, y);
  }
}
