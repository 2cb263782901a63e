// Original file: test/fixtures/echo.proto


export interface EchoRequest {
  'text'?: (string);
  'count'?: (number);
  'delayMs'?: (number);
}

export interface EchoRequest__Output {
  'text': (string);
  'count': (number);
  'delayMs': (number);
}
