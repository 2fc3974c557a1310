// The city drawn in SVG: the areas are the base map (no tiles, no
// internet), with service centres, people and incidents on top. Shapes are
// made once per map; people and incidents are redrawn in one batch per
// animation frame, whatever number of changes arrived in between.

import { AgentStatus, AreaLevel, IncidentStatus, Mode } from "./gen/pingji/v1/pingji_pb.js";
import type { Agent, Area, Incident, ServiceCentre } from "./gen/pingji/v1/pingji_pb.js";
import { words } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
/** The map's width in SVG units; its height follows the city's shape. */
const WIDTH = 1000;
const PADDING = 12;

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
}

export class CityMap {
  private projection = new Projection(0, 0, 1, 1);
  private height = WIDTH * 0.6;
  private readonly areaLayer: SVGGElement;
  private readonly labelLayer: SVGGElement;
  private readonly centreLayer: SVGGElement;
  private readonly linkLayer: SVGGElement;
  private readonly peopleLayer: SVGGElement;
  private readonly incidentLayer: SVGGElement;
  private readonly pickMarker: SVGGElement;
  private areaShapes = new Map<string, SVGPathElement>();
  private leaves = new Set<string>();
  private drawPending = false;
  people = new Map<string, Agent>();
  incidents = new Map<string, Incident>();
  /** The place picked for a new incident, in SVG units. */
  private picked: [number, number] | null = null;

  /** `onPick` is told of each place picked, and says whether it takes it (the role may create incidents). */
  constructor(
    private readonly svg: SVGSVGElement,
    private readonly onPick: (lon: number, lat: number) => boolean,
    private readonly onSelect: (incidentId: string) => void,
  ) {
    this.areaLayer = element("g", { class: "areas" });
    this.labelLayer = element("g", { class: "labels" });
    this.centreLayer = element("g", { class: "centres" });
    this.linkLayer = element("g", { class: "links" });
    this.peopleLayer = element("g", { class: "people" });
    this.incidentLayer = element("g", { class: "incidents" });
    this.pickMarker = element("g", { class: "pick-marker", visibility: "hidden" });
    this.pickMarker.append(element("circle", { class: "pick", r: 10 }), element("path", { class: "pick", d: "M-16 0H16M0 -16V16" }));
    // Names lie under the dots: a person or an incident is never hidden by a name.
    svg.append(this.areaLayer, this.labelLayer, this.centreLayer, this.linkLayer, this.peopleLayer, this.incidentLayer, this.pickMarker);
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${this.height}`);
    this.listen();
  }

  /** Draws `areas` (with geometry) and `centres` as the base map. */
  setAreas(areas: Area[], centres: ServiceCentre[]): void {
    const points = areas.flatMap((area) => area.polygons.flatMap((polygon) => polygon.rings[0]?.points ?? []));
    const fitted = Projection.fit(points);
    this.projection = fitted.projection;
    this.height = fitted.height;
    this.svg.setAttribute("viewBox", `0 0 ${WIDTH} ${this.height.toFixed(1)}`);
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
    this.centreLayer.replaceChildren(
      ...centres.flatMap((centre) => {
        if (!centre.location) {
          return [];
        }
        const [x, y] = this.projection.point(centre.location.lon, centre.location.lat);
        const square = element("rect", { class: "centre", x: x - 4, y: y - 4, width: 8, height: 8 });
        const title = element("title", {});
        title.textContent = `${words().serviceCentre} · ${centre.name}`;
        square.append(title);
        return [square];
      }),
    );
    this.setModes(areas);
    this.scheduleDraw();
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

  /** Redraws people and incidents at the next frame (once, however many changes). */
  scheduleDraw(): void {
    if (this.drawPending) {
      return;
    }
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.draw();
    });
  }

  private draw(): void {
    const dots: SVGElement[] = [];
    for (const agent of this.people.values()) {
      if (!agent.location || !agent.connected) {
        continue;
      }
      const [x, y] = this.projection.point(agent.location.lon, agent.location.lat);
      // A person holding a task is busy with it, whatever status their app last set.
      const shown = agent.currentIncidentId !== "" ? AgentStatus.BUSY : agent.status;
      const dot = element("circle", { class: "person", cx: x.toFixed(1), cy: y.toFixed(1), r: 3.5, fill: STATUS_COLOURS[shown] ?? "#7f8c8d" });
      dot.dataset.agentId = agent.spec?.id ?? "";
      dot.dataset.status = AgentStatus[shown] ?? "";
      // Where the server says the person is (to about 1 km for a viewer).
      dot.dataset.lon = agent.location.lon.toFixed(6);
      dot.dataset.lat = agent.location.lat.toFixed(6);
      const title = element("title", {});
      title.textContent = `${agent.spec?.name ?? agent.spec?.id ?? ""} · ${words().statuses[shown] ?? ""}`;
      dot.append(title);
      dots.push(dot);
    }
    this.peopleLayer.replaceChildren(...dots);
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
        r: 9 - Math.min(4, Math.max(1, incident.priority)),
        fill: PRIORITY_COLOURS[incident.priority] ?? PRIORITY_COLOURS[4],
      });
      mark.dataset.incidentId = incident.id;
      mark.dataset.status = IncidentStatus[incident.status] ?? "";
      mark.classList.toggle("staffed", incident.status === IncidentStatus.STAFFED);
      const title = element("title", {});
      title.textContent = `${incident.id} · ${words().categories[incident.category] ?? incident.category} · P${incident.priority}`;
      mark.append(title);
      marks.push(mark);
    }
    this.incidentLayer.replaceChildren(...marks);
    this.linkLayer.replaceChildren(...this.links());
  }

  /** Lines from people to incidents: dashed for an offer waiting for an
   * answer, solid for an accepted task not completed yet. */
  private links(): SVGElement[] {
    const lines: SVGElement[] = [];
    const line = (kind: "offer" | "assignment", agentId: string, incident: Incident): void => {
      const agent = this.people.get(agentId);
      if (!agent?.location || !incident.location) {
        return;
      }
      const [x1, y1] = this.projection.point(agent.location.lon, agent.location.lat);
      const [x2, y2] = this.projection.point(incident.location.lon, incident.location.lat);
      const link = element("line", { class: `link ${kind}`, x1: x1.toFixed(1), y1: y1.toFixed(1), x2: x2.toFixed(1), y2: y2.toFixed(1) });
      link.dataset.agentId = agentId;
      link.dataset.incidentId = incident.id;
      lines.push(link);
    };
    for (const incident of this.incidents.values()) {
      for (const offer of incident.openOffers) {
        line("offer", offer.agentId, incident);
      }
      for (const assignment of incident.assignments) {
        if (assignment.completedAtMs === 0n) {
          line("assignment", assignment.agentId, incident);
        }
      }
    }
    return lines;
  }

  /** A click (or Enter on the keyboard) picks the place of a new incident. */
  private listen(): void {
    this.svg.addEventListener("click", (event) => {
      // A click on an incident opens it rather than picking a place.
      const incident = event.target instanceof Element ? event.target.closest<SVGElement>("circle.incident") : null;
      if (incident?.dataset.incidentId) {
        this.onSelect(incident.dataset.incidentId);
        return;
      }
      const matrix = this.svg.getScreenCTM();
      if (!matrix) {
        return;
      }
      const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
      this.pick(point.x, point.y);
    });
    this.svg.addEventListener("keydown", (event) => {
      const step = event.shiftKey ? 50 : 10;
      const [x, y] = this.picked ?? [WIDTH / 2, this.height / 2];
      const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      const move = moves[event.key];
      if (!this.svg.classList.contains("may-create")) {
        return;
      }
      if (move) {
        event.preventDefault();
        this.mark(Math.min(WIDTH, Math.max(0, x + move[0])), Math.min(this.height, Math.max(0, y + move[1])));
      } else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.pick(x, y);
      }
    });
  }

  private mark(x: number, y: number): void {
    this.picked = [x, y];
    this.pickMarker.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
    this.pickMarker.setAttribute("visibility", "visible");
  }

  private pick(x: number, y: number): void {
    const { lon, lat } = this.projection.lonLat(x, y);
    if (this.onPick(lon, lat)) {
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
