// The dispatcher's clock, as the page follows it. Offers' and call-ups'
// deadlines are on the dispatcher's clock, which runs faster than real
// time in a drill's demo (`demo --speed 10`) or a replay: a countdown made
// from the browser's clock would show ten times too long there. The page
// asks the dispatcher for its time and speed (GetClock) and runs its own
// copy of that clock from the moment of the answer.

/** The dispatcher's time at a moment of the page's monotonic clock, and its speed. */
let known: { dispatcherMs: number; pageMs: number; speed: number } | null = null;

/** Takes GetClock's answer; `askedAtMs` and `answeredAtMs` are `performance.now()` around the call. */
export function followDispatcherClock(nowMs: number, speed: number, askedAtMs: number, answeredAtMs: number): void {
  // The answer was made somewhere between asking and hearing: take the middle.
  known = { dispatcherMs: nowMs, pageMs: (askedAtMs + answeredAtMs) / 2, speed: speed >= 1 ? speed : 1 };
}

/** Forgets the dispatcher's clock (after logging out). */
export function forgetDispatcherClock(): void {
  known = null;
}

/** The dispatcher's time now (Unix ms); the browser's until the dispatcher has said. */
export function dispatcherNow(): number {
  if (known === null) {
    return Date.now();
  }
  return known.dispatcherMs + (performance.now() - known.pageMs) * known.speed;
}

/** The dispatcher's clock speed (1 until it has said). */
export function dispatcherSpeed(): number {
  return known?.speed ?? 1;
}

/** Whole seconds left until `deadlineMs` on the dispatcher's clock, never below 0. */
export function secondsLeft(deadlineMs: number): number {
  return Math.max(0, Math.ceil((deadlineMs - dispatcherNow()) / 1000));
}
