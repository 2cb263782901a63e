/**
 * An rxjs scheduler on virtual time that behaves like Node's event loop
 * when the loop is blocked: `block(ms)` lets time pass with nothing run;
 * afterwards each timer that fell due fires once, late, and a periodic one
 * is due again a period after it actually fired (Node's setInterval). rxjs's
 * VirtualTimeScheduler always runs an action at its due time, so it cannot
 * show a late timer.
 */
import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';

/** What the scheduler keeps of an action. */
interface Queued {
  readonly dueMs: number;
  readonly pending: boolean;
  readonly closed: boolean;
  run(): void;
}

class LoopAction<T> extends Subscription implements SchedulerAction<T>, Queued {
  dueMs = 0;
  pending = false;
  private state: T | undefined;

  constructor(
    private readonly scheduler: LoopScheduler,
    private readonly work: (this: SchedulerAction<T>, state?: T) => void,
  ) {
    super();
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.state = state;
    this.dueMs = this.scheduler.now() + delay;
    this.pending = true;
    this.scheduler.enqueue(this);
    return this;
  }

  run(): void {
    this.pending = false;
    this.work.call(this, this.state);
  }
}

export class LoopScheduler implements SchedulerLike {
  private clockMs = 0;
  private readonly actions: Queued[] = [];

  now(): number {
    return this.clockMs;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    return new LoopAction<T>(this, work).schedule(state, delay);
  }

  /** Used by the actions. */
  enqueue(action: Queued): void {
    if (!this.actions.includes(action)) this.actions.push(action);
  }

  /** The loop runs freely until `untilMs`: what is due runs in time order (what is overdue, at once). */
  runUntil(untilMs: number): void {
    for (;;) {
      let next: Queued | undefined;
      for (const a of this.actions) if (a.pending && !a.closed && a.dueMs <= untilMs && (next === undefined || a.dueMs < next.dueMs)) next = a;
      if (next === undefined) break;
      this.clockMs = Math.max(this.clockMs, next.dueMs);
      next.run();
    }
    for (let i = this.actions.length - 1; i >= 0; i--) if (!this.actions[i]!.pending || this.actions[i]!.closed) this.actions.splice(i, 1);
    this.clockMs = Math.max(this.clockMs, untilMs);
  }

  /** The loop is blocked for `ms`: time passes, nothing runs. */
  block(ms: number): void {
    this.clockMs += ms;
  }
}
