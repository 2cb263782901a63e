// Original file: proto/rebind/v1/control.proto


export interface ClientLoad {
  'clientId'?: (string);
  'callsPerS'?: (number | string);
  'sets'?: (boolean);
}

export interface ClientLoad__Output {
  'clientId': (string);
  'callsPerS': (number);
  'sets': (boolean);
}
