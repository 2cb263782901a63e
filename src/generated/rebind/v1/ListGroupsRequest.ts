// Original file: proto/rebind/v1/control.proto


export interface ListGroupsRequest {
  'group'?: (string);
  'bindings'?: (number);
}

export interface ListGroupsRequest__Output {
  'group': (string);
  'bindings': (number);
}
