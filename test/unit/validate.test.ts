import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { validateHello, validateReport } from '../../src/balancer/validate';
import type { Hello__Output } from '../../src/generated/rebind/v1/Hello';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';

const hello = (over: Partial<Hello__Output> = {}): Hello__Output => ({
  protocolVersion: 1,
  group: 'echo',
  address: '127.0.0.1:6000',
  methods: [{ path: '/pkg.Svc/Do', kind: 'UNARY' }],
  replicaId: 'r-1',
  resumeSecret: '',
  ...over,
});

const report = (over: Partial<LoadReport__Output> = {}): LoadReport__Output => ({
  seq: 2,
  clientCount: 0,
  intervalMs: 1000,
  callsPerS: 10,
  inFlight: 1,
  latencyMs: 2,
  eventLoopUtilization: 0.1,
  cpuCores: 0.2,
  custom: 0,
  hasCustom: false,
  topClients: [{ clientId: 'client-aaaa', callsPerS: 5, sets: false }],
  otherCallsPerS: 5,
  forwards: 0,
  draining: false,
  ...over,
});

describe('hello validation', () => {
  it('accepts a good hello', () => {
    expect(validateHello(hello())).toBeNull();
  });
  it.each([
    [{ protocolVersion: 2 }, status.FAILED_PRECONDITION, 'protocol_version is 2'],
    [{ group: '' }, status.INVALID_ARGUMENT, 'hello.group'],
    [{ group: '../etc' }, status.INVALID_ARGUMENT, 'not a valid group name'],
    [{ address: 'nowhere' }, status.INVALID_ARGUMENT, 'hello.address'],
    [{ address: '10.0.0.1:99999' }, status.INVALID_ARGUMENT, 'outside 1..65535'],
    [{ replicaId: 'has space' }, status.INVALID_ARGUMENT, 'replica_id'],
    [{ methods: [] }, status.INVALID_ARGUMENT, 'methods is empty'],
    [{ methods: [{ path: 'Do', kind: 'UNARY' }] }, status.INVALID_ARGUMENT, 'not of the form /package.Service/Method'],
    [{ methods: [{ path: '/a.B/C', kind: 'CALL_KIND_UNSPECIFIED' }] }, status.INVALID_ARGUMENT, 'kind is CALL_KIND_UNSPECIFIED'],
    [{ methods: [{ path: '/a.B/C', kind: 'UNARY' }, { path: '/a.B/C', kind: 'UNARY' }] }, status.INVALID_ARGUMENT, 'lists /a.B/C twice'],
    [{ methods: Array.from({ length: 2_001 }, (_, i) => ({ path: `/a.B/M${i}`, kind: 'UNARY' as const })) }, status.RESOURCE_EXHAUSTED, 'limit 2000'],
  ])('refuses %#', (over, code, fragment) => {
    const refusal = validateHello(hello(over as Partial<Hello__Output>));
    expect(refusal?.code).toBe(code);
    expect(refusal?.message).toContain(fragment);
  });
});

describe('load report validation', () => {
  it('accepts a good report', () => {
    expect(validateReport(report(), 1)).toBeNull();
  });
  it.each([
    [{ seq: 1 }, status.FAILED_PRECONDITION, 'not after the previous'],
    [{ intervalMs: 0 }, status.INVALID_ARGUMENT, 'interval_ms is 0'],
    [{ callsPerS: Number.NaN }, status.INVALID_ARGUMENT, 'calls_per_s is NaN'],
    [{ callsPerS: -3 }, status.INVALID_ARGUMENT, 'calls_per_s is -3'],
    [{ callsPerS: Number.POSITIVE_INFINITY }, status.INVALID_ARGUMENT, 'calls_per_s is Infinity'],
    [{ callsPerS: 1e12 }, status.INVALID_ARGUMENT, 'calls_per_s is 1000000000000'],
    [{ eventLoopUtilization: 3 }, status.INVALID_ARGUMENT, 'event_loop_utilization is 3'],
    [{ topClients: [{ clientId: 'x', callsPerS: 1 }] }, status.INVALID_ARGUMENT, 'client_id is not'],
    [{ topClients: [{ clientId: 'client-aaaa', callsPerS: -1 }] }, status.INVALID_ARGUMENT, 'top_clients[0].calls_per_s is -1'],
    [{ topClients: [{ clientId: 'client-aaaa', callsPerS: 1 }, { clientId: 'client-aaaa', callsPerS: 1 }] }, status.INVALID_ARGUMENT, 'twice'],
  ])('refuses %#', (over, code, fragment) => {
    const refusal = validateReport(report(over as Partial<LoadReport__Output>), 1);
    expect(refusal?.code).toBe(code);
    expect(refusal?.message).toContain(fragment);
  });
  it('refuses more top clients than the group asked for', () => {
    const many = Array.from({ length: 5 }, (_, i) => ({ clientId: `client-${i}aaaa`, callsPerS: 1, sets: false }));
    const refusal = validateReport(report({ topClients: many }), 1, { maxMethods: 1, maxPathLength: 1, maxLoad: 1e9, maxInFlight: 1e7, maxTopClients: 4 });
    expect(refusal?.code).toBe(status.RESOURCE_EXHAUSTED);
  });
});
