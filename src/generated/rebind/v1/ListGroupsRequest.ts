// Original file: proto/rebind/v1/control.proto


export interface ListGroupsRequest {
  'group'?: (string);
}

export interface ListGroupsRequest__Output {
  'group': (string);
}
