// Original file: proto/rebind/v1/control.proto

import type { ClientLoad as _rebind_v1_ClientLoad, ClientLoad__Output as _rebind_v1_ClientLoad__Output } from '../../rebind/v1/ClientLoad';
import type { Long } from '@grpc/proto-loader';

export interface LoadReport {
  'seq'?: (number | string | Long);
  'intervalMs'?: (number);
  'callsPerS'?: (number | string);
  'inFlight'?: (number);
  'latencyMs'?: (number | string);
  'eventLoopUtilization'?: (number | string);
  'cpuCores'?: (number | string);
  'custom'?: (number | string);
  'hasCustom'?: (boolean);
  'topClients'?: (_rebind_v1_ClientLoad)[];
  'otherCallsPerS'?: (number | string);
  'forwards'?: (number);
  'draining'?: (boolean);
  'clientCount'?: (number);
}

export interface LoadReport__Output {
  'seq': (number);
  'intervalMs': (number);
  'callsPerS': (number);
  'inFlight': (number);
  'latencyMs': (number);
  'eventLoopUtilization': (number);
  'cpuCores': (number);
  'custom': (number);
  'hasCustom': (boolean);
  'topClients': (_rebind_v1_ClientLoad__Output)[];
  'otherCallsPerS': (number);
  'forwards': (number);
  'draining': (boolean);
  'clientCount': (number);
}
