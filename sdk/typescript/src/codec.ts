// Message codecs: what send takes and what a virtual connection yields.

/**
 * Codec turns application messages into the bytes of one data frame and back.
 * decode gets a buffer it may keep. Either may throw: send then throws a
 * CodecError and sends nothing; a message that fails to decode closes its
 * virtual connection with a CodecError (the peer sent something this side
 * cannot read).
 */
export interface Codec<T> {
  encode(msg: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** The default codec: messages are bytes, passed through as they are. */
export const bytesCodec: Codec<Uint8Array> = {
  encode: (msg) => msg,
  decode: (bytes) => bytes,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 text, one string per message. */
export const textCodec: Codec<string> = {
  encode: (msg) => encoder.encode(msg),
  decode: (bytes) => decoder.decode(bytes),
};

/**
 * JSON, one value per message as UTF-8 text. T is what the application
 * expects; the codec does not check the shape of what it parses.
 */
export function jsonCodec<T = unknown>(): Codec<T> {
  return {
    encode: (msg) => {
      const s = JSON.stringify(msg);
      if (s === undefined) {
        throw new TypeError("value has no JSON form");
      }
      return encoder.encode(s);
    },
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}
