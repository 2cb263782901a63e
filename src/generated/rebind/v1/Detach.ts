// Original file: proto/rebind/v1/control.proto


export interface Detach {
  'reason'?: (string);
}

export interface Detach__Output {
  'reason': (string);
}
