// Original file: proto/rebind/v1/control.proto


export interface SetGranularityRequest {
  'group'?: (string);
  'granularity'?: (string);
}

export interface SetGranularityRequest__Output {
  'group': (string);
  'granularity': (string);
}
