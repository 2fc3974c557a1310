// A small map of the person and the incident with no map tiles (there may
// be no internet): a grid around the person, north up, the incident drawn
// at its distance and bearing. (Area outlines come from
// CommandService.ListAreas, which a person's token may not call.)

import { say, words } from "./i18n.js";

export interface Point {
  lon: number;
  lat: number;
}

const EARTH_RADIUS_M = 6_371_008.8;
const SVG = "http://www.w3.org/2000/svg";
const SIZE = 240;
/** Grid squares of these sides (metres); the smallest that fits the distance. */
const CELLS = [50, 100, 200, 500, 1000, 2000, 5000, 10000];

const radians = (degrees: number) => (degrees * Math.PI) / 180;

/** Great-circle distance in metres. */
export function distanceM(from: Point, to: Point): number {
  const dLat = radians(to.lat - from.lat);
  const dLon = radians(to.lon - from.lon);
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(radians(from.lat)) * Math.cos(radians(to.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Initial bearing in degrees, 0 = north, clockwise. */
export function bearingDeg(from: Point, to: Point): number {
  const y = Math.sin(radians(to.lon - from.lon)) * Math.cos(radians(to.lat));
  const x =
    Math.cos(radians(from.lat)) * Math.sin(radians(to.lat)) -
    Math.sin(radians(from.lat)) * Math.cos(radians(to.lat)) * Math.cos(radians(to.lon - from.lon));
  return ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
}

export function compassWord(bearing: number): string {
  return words().compass[Math.round(bearing / 45) % 8];
}

export function metres(distance: number): string {
  return distance < 1000 ? `${Math.round(distance)} m` : `${(distance / 1000).toFixed(1)} km`;
}

function element(name: string, attributes: Record<string, string | number>): SVGElement {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

/** The sketch as an SVG, with a text alternative; `person` may be unknown. */
export function sketch(person: Point | null, incident: Point): SVGSVGElement {
  const svg = element("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, role: "img", class: "sketch" }) as SVGSVGElement;
  const centre = SIZE / 2;
  const distance = person ? distanceM(person, incident) : 0;
  // Four squares from the centre to the edge; the incident inside the third.
  const cell = CELLS.find((side) => side * 3 >= distance) ?? Math.ceil(distance / 3000) * 1000;
  const pixelsPerMetre = centre / (cell * 4);
  for (let line = 0; line <= 8; line += 1) {
    const at = (line * SIZE) / 8;
    svg.append(element("line", { x1: at, y1: 0, x2: at, y2: SIZE, class: "grid" }));
    svg.append(element("line", { x1: 0, y1: at, x2: SIZE, y2: at, class: "grid" }));
  }
  const north = element("text", { x: SIZE - 14, y: 20, class: "north", "text-anchor": "middle" });
  north.textContent = "N ↑";
  svg.append(north);
  let incidentX = centre;
  let incidentY = centre;
  if (person) {
    const bearing = radians(bearingDeg(person, incident));
    incidentX = centre + Math.sin(bearing) * distance * pixelsPerMetre;
    incidentY = centre - Math.cos(bearing) * distance * pixelsPerMetre;
    svg.append(element("line", { x1: centre, y1: centre, x2: incidentX, y2: incidentY, class: "route" }));
    svg.append(element("circle", { cx: centre, cy: centre, r: 9, class: "me" }));
    const me = element("text", { x: centre, y: centre + 26, class: "label", "text-anchor": "middle" });
    me.textContent = say("you");
    svg.append(me);
  }
  svg.append(element("circle", { cx: incidentX, cy: incidentY, r: 11, class: "target" }));
  svg.append(element("circle", { cx: incidentX, cy: incidentY, r: 4, class: "target-dot" }));
  const title = element("title", {});
  title.textContent = person
    ? `${say("incident")}: ${metres(distance)}, ${say("bearing")} ${compassWord(bearingDeg(person, incident))}`
    : say("incident");
  svg.prepend(title);
  svg.dataset.cellM = String(cell);
  return svg;
}
