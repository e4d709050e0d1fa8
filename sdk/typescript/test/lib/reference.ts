// A plain reference parser of the §1 stream, written from PROTOCOL.md
// without sharing code with src/wire.ts: the whole stream in one buffer,
// one frame after the other. The differential tests hold FrameParser to it.

/** What a parser found, as text: "data <connID> <hex>", "cmd <type> <connID> <remoteID>" or "error <kind>". */
export type Event = string;

/** Argument bytes of each command type, after the Type byte. */
const argBytes: Record<number, number> = { 0: 4, 1: 8, 2: 8, 3: 4, 4: 4, 5: 0 };

export function referenceParse(stream: Uint8Array, maxPacket: number): Event[] {
  const out: Event[] = [];
  const dv = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  let i = 0;
  while (stream.length - i >= 8) {
    const length = dv.getUint32(i, true);
    if (length < 4) {
      out.push("error short");
      return out;
    }
    if (length > maxPacket) {
      out.push("error tooLarge");
      return out;
    }
    if (stream.length - i - 4 < length) {
      break; // incomplete
    }
    const connID = dv.getUint32(i + 4, true);
    const msg = stream.subarray(i + 8, i + 4 + length);
    i += 4 + length;
    if (connID !== 0) {
      out.push(`data ${connID} ${Buffer.from(msg).toString("hex")}`);
      continue;
    }
    if (msg.length === 0) {
      out.push("error badCommand");
      return out;
    }
    const type = msg[0] as number;
    const want = argBytes[type];
    if (want === undefined) {
      out.push("error unknownCmd");
      return out;
    }
    if (msg.length - 1 !== want) {
      out.push("error badCommand");
      return out;
    }
    const a = want >= 4 ? dv.getUint32(msg.byteOffset - stream.byteOffset + 1, true) : 0;
    const b = want >= 8 ? dv.getUint32(msg.byteOffset - stream.byteOffset + 5, true) : 0;
    // Dial/Refuse carry RemoteID; Accept/Connect ConnID, RemoteID; Close ConnID.
    const [c, r] = type === 0 || type === 3 ? [0, a] : type === 4 ? [a, 0] : [a, b];
    out.push(`cmd ${type} ${c} ${r}`);
  }
  return out;
}
