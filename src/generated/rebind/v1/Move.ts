// Original file: proto/rebind/v1/control.proto


export interface Move {
  'clientId'?: (string);
  'target'?: (string);
  'vouch'?: (string);
  'binding'?: (string);
  'bindingVouch'?: (string);
}

export interface Move__Output {
  'clientId': (string);
  'target': (string);
  'vouch': (string);
  'binding': (string);
  'bindingVouch': (string);
}
