// Original file: proto/rebind/v1/control.proto


export interface BindingMemberStatus {
  'memberId'?: (string);
  'address'?: (string);
  'permille'?: (number);
}

export interface BindingMemberStatus__Output {
  'memberId': (string);
  'address': (string);
  'permille': (number);
}
