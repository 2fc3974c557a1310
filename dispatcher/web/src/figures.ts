// Figures the wall shows, computed from the event stream itself: time from
// an incident's report to each acceptance and each arrival (p50/p90), and
// the distance a person still has to go.

import type { Event, Location } from "./gen/pingji/v1/pingji_pb.js";

const EARTH_RADIUS_M = 6_371_008.8;
/** Samples kept per figure: the most recent ones. */
const SAMPLES_KEPT = 1000;

/** Great-circle distance (haversine). */
export function metresBetween(a: Location, b: Location): number {
  const radians = Math.PI / 180;
  const dLat = (b.lat - a.lat) * radians;
  const dLon = (b.lon - a.lon) * radians;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * radians) * Math.cos(b.lat * radians) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** The value below which `share` of the sorted samples lie (nearest rank); undefined without samples. */
export function percentile(samples: number[], share: number): number | undefined {
  if (samples.length === 0) {
    return undefined;
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(share * sorted.length) - 1));
  return sorted[rank];
}

/** Times to accept and to arrive, from the events seen (report → accept, report → arrival). */
export class ResponseTimes {
  private readonly reportedAt = new Map<string, number>();
  readonly acceptMs: number[] = [];
  readonly arriveMs: number[] = [];

  /** When an incident (loaded by a list, not seen reported) was reported. */
  knowReported(incidentId: string, atMs: number): void {
    if (!this.reportedAt.has(incidentId) && atMs > 0) {
      this.reportedAt.set(incidentId, atMs);
    }
  }

  take(event: Event): void {
    const at = Number(event.atMs);
    switch (event.kind) {
      case "incident_reported":
      case "report_accepted":
        // An accepted field report starts looking for people when accepted.
        this.reportedAt.set(event.incidentId, at);
        break;
      case "assigned":
        this.sample(this.acceptMs, event.incidentId, at);
        break;
      case "agent_arrived":
        this.sample(this.arriveMs, event.incidentId, at);
        break;
      case "incident_closed":
      case "incident_cancelled":
        this.reportedAt.delete(event.incidentId);
        break;
    }
  }

  private sample(samples: number[], incidentId: string, at: number): void {
    const reported = this.reportedAt.get(incidentId);
    if (reported === undefined || at < reported) {
      return;
    }
    samples.push(at - reported);
    samples.splice(0, Math.max(0, samples.length - SAMPLES_KEPT));
  }
}

/** A duration for the wall: "42 s", "3.5 min", "—" for none. */
export function duration(ms: number | undefined): string {
  if (ms === undefined) {
    return "—";
  }
  if (ms < 90_000) {
    return `${Math.round(ms / 1000)} s`;
  }
  return `${(ms / 60_000).toFixed(1)} min`;
}
