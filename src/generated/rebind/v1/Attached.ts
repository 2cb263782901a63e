// Original file: proto/rebind/v1/control.proto


export interface Attached {
  'memberId'?: (string);
  'reportIntervalMs'?: (number);
  'topClients'?: (number);
  'granularity'?: (string);
  'recallAll'?: (boolean);
  'proxySecret'?: (string);
  'resumeSecret'?: (string);
}

export interface Attached__Output {
  'memberId': (string);
  'reportIntervalMs': (number);
  'topClients': (number);
  'granularity': (string);
  'recallAll': (boolean);
  'proxySecret': (string);
  'resumeSecret': (string);
}
