// Original file: proto/rebind/v1/control.proto


export interface HaLeader {
  'group'?: (string);
  'balancerId'?: (string);
  'leading'?: (boolean);
}

export interface HaLeader__Output {
  'group': (string);
  'balancerId': (string);
  'leading': (boolean);
}
