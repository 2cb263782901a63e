/**
 * The balancer as an xDS management server for proxyless gRPC clients in
 * any language (gRFC A27): Aggregated Discovery Service, state of the world,
 * served on the control port. Each ADS stream is one client (its node id);
 * its ClusterLoadAssignment for a group is its own binding, so a re-binding
 * is one EDS push on its stream.
 *
 * Bounds (what a remote party can make us hold): streams (`maxStreams`),
 * resource names per type per stream (`maxNamesPerType`), node id length,
 * message size (the control port's), and NACK log lines (rate-limited).
 * A NACK is logged with the client's error detail and recorded; the same
 * content is not sent again, so a client that rejects it cannot make us loop.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger';
import type { WarnLimiter } from '../../common/warn-limiter';
import type { Group } from '../group';
import type { Member } from '../member';
import type { Registry } from '../registry';
import {
  ADS_TYPE_URLS,
  CLUSTER_TYPE_URL,
  ENDPOINT_TYPE_URL,
  LISTENER_TYPE_URL,
  assignmentResource,
  clusterResource,
  listenerResource,
  type AdsTypeUrl,
  type AnyResource,
  type LocalityMember,
} from './resources';

/** ADS streams served at once (default); more are refused with RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_XDS_STREAMS = 10_000;
/** Resource names one stream may subscribe to per type (default). */
export const DEFAULT_MAX_XDS_NAMES_PER_TYPE = 64;
/** Longest node id accepted, characters. */
export const MAX_NODE_ID_CHARS = 256;
/** Longest resource name accepted, characters. */
export const MAX_RESOURCE_NAME_CHARS = 256;

const NODE_ID = /^[\x21-\x7e]{1,256}$/;

/** Why a node id is refused (null: it is valid): 1-256 printable ASCII characters without spaces. */
export function nodeIdProblem(nodeId: unknown): string | null {
  if (typeof nodeId === 'string' && NODE_ID.test(nodeId)) return null;
  const shown = typeof nodeId === 'string' ? `${JSON.stringify(nodeId.slice(0, 64))}${nodeId.length > 64 ? '…' : ''} (${nodeId.length} characters)` : 'missing';
  return `node.id must be 1-${MAX_NODE_ID_CHARS} printable ASCII characters without spaces; got ${shown}`;
}

export interface XdsLimits {
  maxStreams: number;
  maxNamesPerType: number;
}

export interface XdsDeps {
  registry: Registry;
  log: Logger;
  warn: WarnLimiter;
  refused: (reason: string) => void;
  now: () => number;
  limits: XdsLimits;
  /**
   * Whether a stream from `peer` may be served: the control port verified
   * its certificate (mTLS), it is on loopback, or unauthenticated clients
   * are allowed by configuration.
   */
  admit: (call: grpc.ServerDuplexStream<unknown, unknown>) => boolean;
}

/** The rebind client id of an xDS node: a digest of its node id (clients' own ids never start with "xds-"). */
export function xdsClientId(nodeId: string): string {
  return `xds-${createHash('sha256').update(nodeId).digest('base64url').slice(0, 22)}`;
}

/** Whether a client id is an xDS node's. */
export function isXdsClientId(clientId: string): boolean {
  return clientId.startsWith('xds-');
}

interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string } | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

interface TypeState {
  names: Set<string>;
  /** Whether the client asked for every resource of the type (no names: LDS/CDS wildcard). */
  wildcard: boolean;
  /** JSON of the resources last sent, to send only changes. */
  sentJson: string | null;
  version: number;
  nonce: string;
  /** The content the client NACKed (not sent again). */
  nackedJson: string | null;
}

type AdsCall = grpc.ServerDuplexStream<DiscoveryRequest, Record<string, unknown>>;

/** One client's ADS stream. */
class AdsStream {
  nodeId: string | null = null;
  clientId: string | null = null;
  readonly types = new Map<AdsTypeUrl, TypeState>();
  /** This client's binding per group (the members of its ClusterLoadAssignment). */
  readonly bindings = new Map<string, LocalityMember[]>();
  private nonceCounter = 0;
  ended = false;

  constructor(
    readonly call: AdsCall,
    private readonly server: XdsServer,
  ) {}

  nextNonce(): string {
    return String(++this.nonceCounter);
  }

  /** Sends `type` if its content changed since the last response (or `force`). */
  send(type: AdsTypeUrl, force = false): void {
    if (this.ended) return;
    const state = this.types.get(type);
    if (state === undefined) return;
    const resources = this.server.resourcesFor(this, type, state);
    const json = JSON.stringify(resources);
    if (!force && (json === state.sentJson || json === state.nackedJson)) return;
    // A changed assignment on a stream that had one: a re-binding pushed to the client.
    if (type === ENDPOINT_TYPE_URL && state.sentJson !== null) this.server.pushes++;
    state.sentJson = json;
    state.version++;
    state.nonce = this.nextNonce();
    this.call.write({ version_info: String(state.version), resources, type_url: type, nonce: state.nonce });
  }

  fail(code: Status, details: string): void {
    if (this.ended) return;
    this.ended = true;
    this.call.emit('error', { code, details });
    this.call.destroy();
  }
}

export class XdsServer {
  private readonly streams = new Set<AdsStream>();
  /** Streams by client id (several channels of one node share an id). */
  private readonly byClient = new Map<string, Set<AdsStream>>();
  /** NACKs seen (for tests and metrics). */
  nacks = 0;
  /** EDS responses that changed a client's assignment after its first (re-bindings pushed). */
  pushes = 0;

  constructor(private readonly deps: XdsDeps) {
    deps.registry.listen({
      memberRemoved: (group, member) => this.memberGone(group, member),
      memberAdded: (group) => this.membershipChanged(group),
    });
  }

  /** ADS streams open now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Whether `clientId` is an xDS client with an open stream. */
  hasClient(clientId: string): boolean {
    return this.byClient.has(clientId);
  }

  handlers(): { StreamAggregatedResources: (call: AdsCall) => void; DeltaAggregatedResources: (call: AdsCall) => void } {
    return {
      StreamAggregatedResources: (call) => this.open(call),
      DeltaAggregatedResources: (call) => {
        this.deps.refused('xds_delta_unsupported');
        call.emit('error', { code: Status.UNIMPLEMENTED, details: 'rebind: incremental (delta) xDS is not served; use state of the world' });
      },
    };
  }

  private open(call: AdsCall): void {
    if (!this.deps.admit(call as grpc.ServerDuplexStream<unknown, unknown>)) {
      this.refuse(call, 'xds_unauthenticated', Status.UNAUTHENTICATED, 'rebind: xDS clients must come from loopback or present a client certificate the control port verifies (or set xds.allowUnauthenticated)');
      return;
    }
    if (this.streams.size >= this.deps.limits.maxStreams) {
      this.refuse(call, 'xds_stream_limit', Status.RESOURCE_EXHAUSTED, `rebind: ${this.streams.size} xDS streams are open (limit xds.maxStreams=${this.deps.limits.maxStreams})`);
      return;
    }
    const stream = new AdsStream(call, this);
    this.streams.add(stream);
    call.on('data', (request: DiscoveryRequest) => this.onRequest(stream, request));
    const close = () => this.close(stream);
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
  }

  private refuse(call: AdsCall, reason: string, code: Status, details: string): void {
    this.deps.refused(reason);
    this.deps.warn.warn(reason, { peer: call.getPeer(), reason }, `refused: xDS stream (${details})`);
    call.emit('error', { code, details });
  }

  private close(stream: AdsStream): void {
    if (!this.streams.delete(stream)) return;
    stream.ended = true;
    if (stream.clientId !== null) {
      const set = this.byClient.get(stream.clientId);
      set?.delete(stream);
      if (set?.size === 0) this.byClient.delete(stream.clientId);
    }
  }

  private onRequest(stream: AdsStream, request: DiscoveryRequest): void {
    if (stream.ended) return;
    const nodeId = request.node?.id;
    if (stream.nodeId === null) {
      const problem = nodeIdProblem(nodeId);
      if (problem !== null || typeof nodeId !== 'string') {
        this.deps.refused('xds_bad_node');
        stream.fail(Status.INVALID_ARGUMENT, `rebind: the first xDS request must carry a node id: ${problem}`);
        return;
      }
      stream.nodeId = nodeId;
      stream.clientId = xdsClientId(nodeId);
      let set = this.byClient.get(stream.clientId);
      if (set === undefined) {
        set = new Set();
        this.byClient.set(stream.clientId, set);
      }
      set.add(stream);
      this.deps.log.info({ node: nodeId, client: stream.clientId, peer: stream.call.getPeer() }, `xDS client ${nodeId} connected`);
    } else if (typeof nodeId === 'string' && nodeId !== '' && nodeId !== stream.nodeId) {
      this.deps.refused('xds_bad_node');
      stream.fail(Status.INVALID_ARGUMENT, `rebind: node.id changed on an open xDS stream (${JSON.stringify(stream.nodeId)} -> ${JSON.stringify(nodeId.slice(0, 64))})`);
      return;
    }
    const type = request.type_url ?? '';
    if (!(ADS_TYPE_URLS as readonly string[]).includes(type)) {
      // Not a type rebind serves: the client learns nothing of it (it times out on it), the stream goes on.
      this.deps.refused('xds_unknown_type');
      this.deps.warn.warn('xds_unknown_type', { node: stream.nodeId, type: type.slice(0, 200) }, `xDS client ${stream.nodeId} asked for a type rebind does not serve: ${type.slice(0, 200)}`);
      return;
    }
    const typeUrl = type as AdsTypeUrl;
    const names = request.resource_names ?? [];
    if (names.length > this.deps.limits.maxNamesPerType || names.some((n) => typeof n !== 'string' || n.length > MAX_RESOURCE_NAME_CHARS)) {
      this.deps.refused('xds_too_many_names');
      stream.fail(
        Status.RESOURCE_EXHAUSTED,
        `rebind: an xDS request may name at most ${this.deps.limits.maxNamesPerType} resources of a type (xds.maxNamesPerType), each at most ${MAX_RESOURCE_NAME_CHARS} characters; got ${names.length}`,
      );
      return;
    }
    let state = stream.types.get(typeUrl);
    const nonce = request.response_nonce ?? '';
    if (state !== undefined && nonce !== '' && nonce !== state.nonce) return; // answers an earlier response: stale (SotW)
    if (request.error_detail !== null && request.error_detail !== undefined && (request.error_detail.message ?? '') !== '') {
      this.nacks++;
      this.deps.refused('xds_nack');
      this.deps.warn.warn('xds_nack', { node: stream.nodeId, type: typeUrl, nonce, detail: request.error_detail.message }, `xDS client ${stream.nodeId} rejected ${typeUrl} (nonce ${nonce}): ${request.error_detail.message}`);
      if (state !== undefined) state.nackedJson = state.sentJson;
    }
    const first = state === undefined;
    if (state === undefined) {
      state = { names: new Set(), wildcard: false, sentJson: null, version: 0, nonce: '', nackedJson: null };
      stream.types.set(typeUrl, state);
    }
    const before = [...state.names].sort().join('\n');
    state.names = new Set(names);
    state.wildcard = names.length === 0 && (typeUrl === LISTENER_TYPE_URL || typeUrl === CLUSTER_TYPE_URL);
    const changed = first || before !== [...state.names].sort().join('\n');
    if (typeUrl === ENDPOINT_TYPE_URL) {
      for (const group of [...stream.bindings.keys()]) if (!state.names.has(group)) stream.bindings.delete(group);
    }
    if (changed) stream.send(typeUrl, first);
  }

  /** The resources of `type` a stream gets now (binding its client where it has none yet). */
  resourcesFor(stream: AdsStream, type: AdsTypeUrl, state: TypeState): AnyResource[] {
    const groups = this.deps.registry.groups;
    const names = state.wildcard ? [...groups.keys()] : [...state.names];
    const out: AnyResource[] = [];
    for (const name of names) {
      const group = groups.get(name);
      if (group === undefined) continue;
      if (type === LISTENER_TYPE_URL) out.push(listenerResource(name));
      else if (type === CLUSTER_TYPE_URL) out.push(clusterResource(name));
      else if (type === ENDPOINT_TYPE_URL) {
        let members = stream.bindings.get(name);
        if (members === undefined || members.length === 0) {
          members = this.bind(stream, group);
          stream.bindings.set(name, members);
        }
        const { resource, skipped } = assignmentResource(name, members);
        if (skipped.length > 0) this.deps.warn.warn('xds_unroutable_member', { group: name, skipped }, `xDS: members of "${name}" without an IP address cannot be sent to xDS clients: ${skipped.join(', ')}`);
        out.push(resource);
      }
    }
    return out;
  }

  /** A binding for an xDS client in `group`: per-request, every member by capacity; otherwise one member, as any bind. */
  private bind(stream: AdsStream, group: Group, avoid?: ReadonlySet<string>): LocalityMember[] {
    const path = [...group.methodPaths()][0];
    if (path === undefined) return [];
    const now = this.deps.now();
    if (group.granularity === 'per-request') {
      const direct = group.directBinding(path, stream.clientId, now);
      if (direct !== null) return direct.members.map((m) => ({ memberId: group.memberAt(m.address)?.id ?? m.address, address: m.address, permille: m.permille }));
    }
    const member = group.choose(path, 'bind', stream.clientId, now, avoid);
    return member === null ? [] : [{ memberId: member.id, address: member.address, permille: 1000 }];
  }

  /**
   * A plan gave xDS client `clientId` a new binding in `group`: pushed now
   * (EDS) on each of its streams. Returns false if it has no stream (the
   * caller then treats it like any client).
   */
  rebind(group: Group, clientId: string, members: readonly LocalityMember[]): boolean {
    const streams = this.byClient.get(clientId);
    if (streams === undefined) return false;
    for (const stream of streams) {
      if (!stream.types.get(ENDPOINT_TYPE_URL)?.names.has(group.name)) continue;
      stream.bindings.set(group.name, [...members]);
      stream.send(ENDPOINT_TYPE_URL);
    }
    return true;
  }

  /** A member left (or is draining): each xDS client bound to it gets a binding without it. */
  memberGone(group: Group, member: Member): void {
    for (const stream of this.streams) {
      const members = stream.bindings.get(group.name);
      if (members === undefined || !members.some((m) => m.memberId === member.id)) continue;
      const rest = members.filter((m) => m.memberId !== member.id);
      const total = rest.reduce((sum, m) => sum + m.permille, 0);
      stream.bindings.set(group.name, rest.length === 0 || total === 0 ? this.bind(stream, group, new Set([member.address])) : rest);
      stream.send(ENDPOINT_TYPE_URL);
    }
  }

  /** Membership or the capacity weights changed: per-request clients get the group's new binding. */
  membershipChanged(group: Group): void {
    if (group.granularity !== 'per-request') return;
    for (const stream of this.streams) {
      if (!stream.bindings.has(group.name)) continue;
      stream.bindings.set(group.name, this.bind(stream, group));
      stream.send(ENDPOINT_TYPE_URL);
    }
  }
}
