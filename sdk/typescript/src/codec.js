// Message codecs: what send takes and what a virtual connection yields.
/** The default codec: messages are bytes, passed through as they are. */
export const bytesCodec = {
    encode: (msg) => msg,
    decode: (bytes) => bytes,
};
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** UTF-8 text, one string per message. */
export const textCodec = {
    encode: (msg) => encoder.encode(msg),
    decode: (bytes) => decoder.decode(bytes),
};
/**
 * JSON, one value per message as UTF-8 text. T is what the application
 * expects; the codec does not check the shape of what it parses.
 */
export function jsonCodec() {
    return {
        encode: (msg) => {
            const s = JSON.stringify(msg);
            if (s === undefined) {
                throw new TypeError("value has no JSON form");
            }
            return encoder.encode(s);
        },
        decode: (bytes) => JSON.parse(decoder.decode(bytes)),
    };
}
//# sourceMappingURL=codec.js.map