/**
 * The Control service: one bidirectional stream per attached replica.
 * Replica -> balancer: Hello, then LoadReports, then Detach.
 * Balancer -> replica: Attached, then Advisories (and Notices for refused
 * messages). Every message is validated; a bad Hello ends the stream with
 * the matching status, a bad report is refused with a Notice and dropped.
 */
import * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { SchedulerLike } from 'rxjs';
import type { Logger } from '../common/logger';
import type { WarnLimiter } from '../common/warn-limiter';
import type { BalancerMessage } from '../generated/rebind/v1/BalancerMessage';
import type { ControlHandlers } from '../generated/rebind/v1/Control';
import type { ReplicaMessage__Output } from '../generated/rebind/v1/ReplicaMessage';
import type { Analyzer } from './analyzer';
import { DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_MAX_PENDING_ATTACHMENTS, DEFAULT_MAX_REFUSED_PER_INTERVAL, DEFAULT_MAX_REPORTS_PER_INTERVAL } from './config';
import { checkReplicaIdentity } from './identity';
import { Member } from './member';
import type { Registry } from './registry';
import { decodeReplicaMessage } from './replica-message-codec';
import { validateHello, validateReport, type ControlLimits, type Refusal } from './validate';

/** Reports faster than this many per report interval are refused as a flood. */
export const MAX_REPORTS_PER_INTERVAL = DEFAULT_MAX_REPORTS_PER_INTERVAL;

export interface ControlDeps {
  registry: Registry;
  analyzer: Analyzer;
  scheduler: SchedulerLike;
  log: Logger;
  limits: ControlLimits;
  /** Warn lines for refused input, rate-limited per reason (a flood must not become a log flood). */
  warn: WarnLimiter;
  /** Counts refused inputs by reason (for metrics). */
  refused?: (reason: string) => void;
  /** Reports beyond this many per report interval are refused as a flood. */
  maxReportsPerInterval?: number;
  /** An attachment that has not said hello within this long is closed, ms. */
  helloTimeoutMs?: number;
  /** Streams waiting for their hello at once (across connections); more are refused. */
  maxPendingAttachments?: number;
  /** Refused messages per report interval after which the attachment is closed as a flood. */
  maxRefusedPerInterval?: number;
  /**
   * With mTLS (client certificates required): bind each attachment to the
   * identity in its certificate (see ./identity.ts); null: no check.
   */
  replicaIdentities?: Readonly<Record<string, readonly string[]>> | null;
}

/** Distinct report limits kept (one per top_clients bound among the groups); past it the cache starts again. */
const MAX_CACHED_REPORT_LIMITS = 64;

/** Messages queued on a control stream beyond which its replica is taken as not reading. */
export const MAX_QUEUED_CONTROL_MESSAGES = 64;

type AttachCall = grpc.ServerDuplexStream<ReplicaMessage__Output, BalancerMessage>;

/**
 * The Control service definition to register on the control server: the
 * loaded one with Attach's request decoded by the hand-written decoder
 * (./replica-message-codec.ts: the same objects as proto-loader's, without
 * its second object tree per message; one LoadReport per replica per
 * interval makes this the balancer's most frequent decode).
 */
export function controlServiceDefinition(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const attach = service['Attach'];
  if (attach === undefined) throw new Error('rebind.v1.Control has no Attach method');
  return { ...service, Attach: { ...attach, requestDeserialize: decodeReplicaMessage } };
}

export function controlHandlers(deps: ControlDeps): ControlHandlers {
  const pending = { count: 0 };
  // One limits object per top_clients bound (a handful of groups), shared by the sessions: none made per report.
  const reportLimits = new Map<number, ControlLimits>();
  const limitsFor = (maxTopClients: number): ControlLimits => {
    let limits = reportLimits.get(maxTopClients);
    if (limits === undefined) {
      if (reportLimits.size >= MAX_CACHED_REPORT_LIMITS) reportLimits.clear();
      limits = { ...deps.limits, maxTopClients };
      reportLimits.set(maxTopClients, limits);
    }
    return limits;
  };
  return {
    Attach: (call: AttachCall) => new AttachSession(call, deps, pending, limitsFor).start(),
  };
}

/** The balancer's side of one replica's control stream. */
class AttachSession {
  private member: Member | null = null;
  private ended = false;
  private windowStartMs = 0;
  private reportsInWindow = 0;
  /** Refused messages and notices sent in the current window of one report interval. */
  private refusedInWindow = 0;
  private noticesInWindow = 0;
  /** Waiting for a hello: counted in `pending`, closed at the hello timeout. */
  private helloTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly peer: string;

  constructor(
    private readonly call: AttachCall,
    private readonly deps: ControlDeps,
    /** Streams waiting for their hello, across the control port. */
    private readonly pending: { count: number },
    /** The limits a report is checked against, given its bound on top clients. */
    private readonly limitsFor: (maxTopClients: number) => ControlLimits,
  ) {
    this.peer = call.getPeer();
  }

  start(): void {
    const maxPending = this.deps.maxPendingAttachments ?? DEFAULT_MAX_PENDING_ATTACHMENTS;
    if (this.pending.count >= maxPending) {
      this.call.on('error', () => undefined);
      return this.fail('attach_pending_limit', {
        code: Status.RESOURCE_EXHAUSTED,
        message: `${this.pending.count} attachments are waiting for their hello (limit limits.maxPendingAttachments=${maxPending}); try again later`,
      });
    }
    this.pending.count++;
    const helloTimeoutMs = this.deps.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.helloTimer = setTimeout(() => {
      this.helloTimer = null;
      this.fail('hello_timeout', { code: Status.DEADLINE_EXCEEDED, message: `no hello within ${helloTimeoutMs} ms (limits.helloTimeoutMs): the first message must be hello` });
    }, helloTimeoutMs);
    this.call.on('data', (message: ReplicaMessage__Output) => this.onMessage(message));
    this.call.on('end', () => this.finish('control stream half-closed by the replica'));
    this.call.on('cancelled', () => this.lost('control stream cancelled'));
    this.call.on('error', (err) => this.lost(`control stream error: ${err.message}`));
    this.call.on('close', () => this.lost('control stream closed'));
  }

  /** No longer waiting for a hello (it came, or the stream ended). */
  private helloDone(): void {
    if (this.helloTimer === null) return;
    clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.pending.count--;
  }

  private refuseInput(reason: string, refusal: Refusal): void {
    this.deps.refused?.(reason);
    this.deps.warn.warn(reason, { peer: this.peer, member: this.member?.id, code: Status[refusal.code], reason }, `refused: ${refusal.message}`);
  }

  /** Ends the stream with an error status. */
  private fail(reason: string, refusal: Refusal): void {
    this.refuseInput(reason, refusal);
    if (this.member !== null) this.deps.registry.detach(this.member, `refused: ${refusal.message}`);
    this.close(refusal.code, refusal.message);
  }

  private close(code: number, details: string): void {
    this.helloDone();
    if (this.ended) return;
    this.ended = true;
    if (code === Status.OK) {
      this.call.end();
    } else {
      this.call.emit('error', { code, details, metadata: new grpc.Metadata() });
    }
  }

  private lost(reason: string): void {
    this.helloDone();
    if (this.member !== null) this.deps.registry.detach(this.member, reason);
    this.ended = true;
  }

  /** Ends the attachment normally (detach or half-close). */
  private finish(reason: string): void {
    if (this.member !== null) this.deps.registry.detach(this.member, reason);
    this.close(Status.OK, reason);
  }

  private onMessage(message: ReplicaMessage__Output): void {
    if (this.ended) return;
    switch (message.body) {
      case 'hello':
        return this.onHello(message);
      case 'report':
        return this.onReport(message);
      case 'detach': {
        const reason = (message.detach?.reason ?? '').slice(0, 200) || 'no reason given';
        return this.finish(`detached by the replica: ${reason}`);
      }
      default:
        return this.fail('empty_message', { code: Status.INVALID_ARGUMENT, message: 'replica message has no body (expected hello, report or detach)' });
    }
  }

  private onHello(message: ReplicaMessage__Output): void {
    if (this.member !== null) {
      return this.fail('hello_twice', { code: Status.FAILED_PRECONDITION, message: 'hello sent twice on one attachment' });
    }
    this.helloDone();
    const hello = message.hello!;
    const refusal = validateHello(hello, this.deps.limits);
    if (refusal !== null) return this.fail('bad_hello', refusal);
    if (this.deps.replicaIdentities !== undefined && this.deps.replicaIdentities !== null) {
      const mismatch = checkReplicaIdentity(this.call.getAuthContext().sslPeerCertificate, hello.address, this.deps.replicaIdentities);
      if (mismatch !== null) return this.fail(mismatch.reason ?? 'identity_mismatch', mismatch);
    }
    const sink = {
      sendAdvisory: (advisory: BalancerMessage['advisory'] & object) => {
        if (this.ended) return false;
        if (this.call.writableLength >= MAX_QUEUED_CONTROL_MESSAGES) {
          // It does not read what we send: an advisory it never sees is worse than none.
          this.fail('control_not_reading', {
            code: Status.RESOURCE_EXHAUSTED,
            message: `${this.call.writableLength} messages queued on the control stream: the replica does not read it`,
          });
          return false;
        }
        this.call.write({ advisory });
        return true;
      },
      close: (code: number, details: string) => this.close(code, details),
    };
    const result = this.deps.registry.attach(hello, sink, this.deps.scheduler.now());
    if (!(result instanceof Member)) return this.fail(result.reason ?? 'attach_refused', result);
    this.member = result;
    const group = this.deps.registry.groups.get(result.group)!;
    this.windowStartMs = this.deps.scheduler.now();
    // The attachment carries the group's granularity and recall explicitly:
    // the replica derives its forward state from it, never from an earlier attachment.
    this.call.write({
      attached: {
        memberId: result.id,
        reportIntervalMs: group.config.reportIntervalMs,
        topClients: group.config.topClients,
        granularity: group.granularity,
        recallAll: group.granularity === 'per-request',
        proxySecret: result.proxySecret,
        resumeSecret: result.resumeSecret,
      },
    });
  }

  private onReport(message: ReplicaMessage__Output): void {
    const member = this.member;
    if (member === null) {
      return this.fail('report_before_hello', { code: Status.FAILED_PRECONDITION, message: 'load report before hello: the first message must be hello' });
    }
    const report = message.report!;
    const group = this.deps.registry.groups.get(member.group);
    if (group === undefined || group.members.get(member.id) !== member) {
      return this.fail('detached_member', { code: Status.FAILED_PRECONDITION, message: `member ${member.id} is no longer attached; attach again` });
    }
    const now = this.deps.scheduler.now();
    if (now - this.windowStartMs >= group.config.reportIntervalMs) {
      this.windowStartMs = now;
      this.reportsInWindow = 0;
      this.refusedInWindow = 0;
      this.noticesInWindow = 0;
    }
    const limit = this.deps.maxReportsPerInterval ?? MAX_REPORTS_PER_INTERVAL;
    if (++this.reportsInWindow > limit) {
      return this.notice('report_flood', report.seq, {
        code: Status.RESOURCE_EXHAUSTED,
        message: `more than ${limit} reports within one report interval of ${group.config.reportIntervalMs} ms; report ${report.seq} dropped`,
      });
    }
    const refusal = validateReport(report, member.lastSeq, this.limitsFor(Math.min(this.deps.limits.maxTopClients, group.config.topClients)));
    if (refusal !== null) return this.notice('bad_report', report.seq, refusal);
    group.applyReport(member, report, now);
  }

  /**
   * Refuses one message without ending the attachment. The replica is told
   * with a Notice, at most maxReportsPerInterval of them per interval and
   * only while it reads its stream; a replica whose messages keep being
   * refused beyond maxRefusedPerInterval per interval is cut off as a flood.
   */
  private notice(reason: string, seq: number, refusal: Refusal): void {
    this.refuseInput(reason, refusal);
    const maxRefused = this.deps.maxRefusedPerInterval ?? DEFAULT_MAX_REFUSED_PER_INTERVAL;
    if (++this.refusedInWindow > maxRefused) {
      return this.fail('control_flood', {
        code: Status.RESOURCE_EXHAUSTED,
        message: `more than ${maxRefused} refused messages within one report interval (limits.maxRefusedPerInterval); attachment closed`,
      });
    }
    const maxNotices = this.deps.maxReportsPerInterval ?? MAX_REPORTS_PER_INTERVAL;
    if (++this.noticesInWindow > maxNotices || this.call.writableLength >= MAX_QUEUED_CONTROL_MESSAGES / 2) {
      this.deps.refused?.('notice_dropped');
      return;
    }
    this.call.write({ notice: { code: refusal.code, message: refusal.message, reportSeq: seq } });
  }
}
