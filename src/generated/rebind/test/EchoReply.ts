// Original file: test/fixtures/echo.proto


export interface EchoReply {
  'text'?: (string);
  'servedBy'?: (string);
  'index'?: (number);
}

export interface EchoReply__Output {
  'text': (string);
  'servedBy': (string);
  'index': (number);
}
