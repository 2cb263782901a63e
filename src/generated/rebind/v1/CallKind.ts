// Original file: proto/rebind/v1/control.proto

export const CallKind = {
  CALL_KIND_UNSPECIFIED: 'CALL_KIND_UNSPECIFIED',
  UNARY: 'UNARY',
  SERVER_STREAMING: 'SERVER_STREAMING',
  CLIENT_STREAMING: 'CLIENT_STREAMING',
  BIDI_STREAMING: 'BIDI_STREAMING',
} as const;

export type CallKind =
  | 'CALL_KIND_UNSPECIFIED'
  | 0
  | 'UNARY'
  | 1
  | 'SERVER_STREAMING'
  | 2
  | 'CLIENT_STREAMING'
  | 3
  | 'BIDI_STREAMING'
  | 4

export type CallKind__Output = typeof CallKind[keyof typeof CallKind]
