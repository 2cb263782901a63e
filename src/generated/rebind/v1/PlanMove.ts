// Original file: proto/rebind/v1/control.proto


export interface PlanMove {
  'clientId'?: (string);
  'fromMemberId'?: (string);
  'fromAddress'?: (string);
  'toMemberId'?: (string);
  'toAddress'?: (string);
  'load'?: (number | string);
}

export interface PlanMove__Output {
  'clientId': (string);
  'fromMemberId': (string);
  'fromAddress': (string);
  'toMemberId': (string);
  'toAddress': (string);
  'load': (number);
}
