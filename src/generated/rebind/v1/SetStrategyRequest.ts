// Original file: proto/rebind/v1/control.proto


export interface SetStrategyRequest {
  'group'?: (string);
  'strategy'?: (string);
  'paramsJson'?: (string);
}

export interface SetStrategyRequest__Output {
  'group': (string);
  'strategy': (string);
  'paramsJson': (string);
}
