// The gateway's framing (PROTOCOL.md §1, docs/protocol.md): a stream of
// little-endian frames
//
//	Length u32 | ConnID u32 | Message (Length-4 bytes)
//
// Length counts everything after itself. ConnID 0 carries a command (Type u8
// and its arguments), any other ConnID data for that virtual connection.
// Encoders and the parser are pure functions over bytes: no sockets.

import { ProtocolError } from "./errors.js";

/** Bytes of the Length field. */
export const SIZE_OF_LENGTH = 4;
/** Bytes of the ConnID field. */
export const SIZE_OF_CONN_ID = 4;
/** Bytes before a frame's message. */
export const HEADER_SIZE = SIZE_OF_LENGTH + SIZE_OF_CONN_ID;
/** The gateway's default -MaxPacket: the largest Length, in bytes. */
export const DEFAULT_MAX_PACKET = 512 * 1024;

/** Command types (ConnID 0). */
export const Cmd = {
  /** open a virtual connection to RemoteID */
  Dial: 0,
  /** gateway → dialer: the dial succeeded, ConnID is the new virtual connection */
  Accept: 1,
  /** gateway → dialed side: RemoteID opened virtual connection ConnID to you */
  Connect: 2,
  /** gateway → dialer: the dial to RemoteID failed */
  Refuse: 3,
  /** virtual connection ConnID is closed */
  Close: 4,
  /** keep-alive; the gateway answers each Ping with a Ping */
  Ping: 5,
} as const;
export type CmdType = (typeof Cmd)[keyof typeof Cmd];

/** A decoded command. Fields a type does not carry are 0. */
export interface Command {
  type: CmdType;
  connID: number;
  remoteID: number;
}

/** The Length of each command type's frame. */
const cmdLength: readonly number[] = [
  9, // Dial: ConnID + Type + RemoteID
  13, // Accept: ConnID + Type + ConnID + RemoteID
  13, // Connect
  9, // Refuse: RemoteID
  9, // Close: ConnID
  5, // Ping
];

/** The whole frame size (Length field included) of a command type. */
export function commandSize(type: CmdType): number {
  return SIZE_OF_LENGTH + (cmdLength[type] as number);
}

/** Encodes a command frame. */
export function encodeCommand(cmd: Command): Uint8Array {
  const frame = new Uint8Array(commandSize(cmd.type));
  const v = new DataView(frame.buffer);
  v.setUint32(0, frame.length - SIZE_OF_LENGTH, true);
  v.setUint32(4, 0, true);
  frame[8] = cmd.type;
  switch (cmd.type) {
    case Cmd.Dial:
    case Cmd.Refuse:
      v.setUint32(9, cmd.remoteID, true);
      break;
    case Cmd.Accept:
    case Cmd.Connect:
      v.setUint32(9, cmd.connID, true);
      v.setUint32(13, cmd.remoteID, true);
      break;
    case Cmd.Close:
      v.setUint32(9, cmd.connID, true);
      break;
    case Cmd.Ping:
      break;
  }
  return frame;
}

/** Encodes a data frame carrying message on virtual connection connID (not 0). */
export function encodeData(connID: number, message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_SIZE + message.length);
  putHeader(frame, 0, connID, message.length);
  frame.set(message, HEADER_SIZE);
  return frame;
}

/** Writes the header of a data frame with a message of n bytes at off. */
export function putHeader(buf: Uint8Array, off: number, connID: number, n: number): void {
  const v = new DataView(buf.buffer, buf.byteOffset + off, HEADER_SIZE);
  v.setUint32(0, SIZE_OF_CONN_ID + n, true);
  v.setUint32(4, connID, true);
}

/**
 * Decodes the message of a command frame (the bytes after ConnID 0: Type and
 * its arguments). A wrong size for its type, or an unknown type, is a
 * ProtocolError.
 */
export function decodeCommand(msg: Uint8Array): Command {
  if (msg.length < 1) {
    throw new ProtocolError("command without a type byte");
  }
  const type = msg[0] as number;
  if (type >= cmdLength.length) {
    throw new ProtocolError(`unknown command type ${type}`);
  }
  const want = (cmdLength[type] as number) - SIZE_OF_CONN_ID;
  if (msg.length !== want) {
    throw new ProtocolError(`command ${type} has ${msg.length} bytes, want ${want}`);
  }
  const v = new DataView(msg.buffer, msg.byteOffset, msg.length);
  const cmd: Command = { type: type as CmdType, connID: 0, remoteID: 0 };
  switch (type) {
    case Cmd.Dial:
    case Cmd.Refuse:
      cmd.remoteID = v.getUint32(1, true);
      break;
    case Cmd.Accept:
    case Cmd.Connect:
      cmd.connID = v.getUint32(1, true);
      cmd.remoteID = v.getUint32(5, true);
      break;
    case Cmd.Close:
      cmd.connID = v.getUint32(1, true);
      break;
  }
  return cmd;
}

/** Receives what a FrameParser finds in the stream, in stream order. */
export interface FrameSink {
  /** A data frame: message is a copy the sink may keep. */
  data(connID: number, message: Uint8Array): void;
  /** A command frame, decoded. */
  command(cmd: Command): void;
}

/**
 * FrameParser cuts a byte stream that arrives in chunks of any size into
 * frames: a frame may be split across chunks, and a chunk may hold many
 * frames. It holds at most one partial frame: a header of up to 8 bytes, or
 * one buffer of the frame's exact size, allocated once the Length is checked
 * against maxPacket. Data messages are handed out as copies of their own, so a
 * sink that keeps one holds its bytes only, never a whole chunk.
 */
export class FrameParser {
  readonly maxPacket: number;
  private readonly head = new Uint8Array(HEADER_SIZE);
  private headLen = 0;
  /** The partial frame's body (ConnID and message), once its header is read. */
  private body: Uint8Array | null = null;
  private bodyLen = 0;
  private connID = 0;
  private failed: ProtocolError | null = null;

  constructor(maxPacket: number = DEFAULT_MAX_PACKET) {
    this.maxPacket = maxPacket;
  }

  /** Bytes held for the frame being received (its allocated buffer). */
  get pendingBytes(): number {
    return this.body === null ? this.headLen : this.body.length + SIZE_OF_LENGTH;
  }

  /**
   * Parses chunk, calling sink for every frame it completes. A malformed
   * frame throws ProtocolError; the parser then refuses further input.
   * A sink that throws stops the parse at that frame (the rest of the chunk
   * is dropped) and the parser stays usable only if the error is ignored.
   */
  push(chunk: Uint8Array, sink: FrameSink): void {
    if (this.failed) {
      throw this.failed;
    }
    try {
      this.parse(chunk, sink);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.failed = err;
      }
      throw err;
    }
  }

  private parse(chunk: Uint8Array, sink: FrameSink): void {
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      if (this.body !== null) {
        // Finish the partial frame.
        const n = Math.min(this.body.length - this.bodyLen, end - off);
        this.body.set(chunk.subarray(off, off + n), this.bodyLen);
        this.bodyLen += n;
        off += n;
        if (this.bodyLen < this.body.length) {
          return;
        }
        const body = this.body;
        this.body = null;
        this.bodyLen = 0;
        this.emit(this.connID, body.subarray(SIZE_OF_CONN_ID), true, sink);
        continue;
      }
      if (this.headLen === 0 && end - off >= HEADER_SIZE) {
        // Fast path: a header in the chunk.
        const length = readU32(chunk, off);
        this.check(length);
        const connID = readU32(chunk, off + SIZE_OF_LENGTH);
        const frameEnd = off + SIZE_OF_LENGTH + length;
        if (frameEnd <= end) {
          this.emit(connID, chunk.subarray(off + HEADER_SIZE, frameEnd), false, sink);
          off = frameEnd;
          continue;
        }
        this.startBody(length, connID, chunk.subarray(off + SIZE_OF_LENGTH, end));
        return;
      }
      // A header split across chunks.
      const n = Math.min(HEADER_SIZE - this.headLen, end - off);
      this.head.set(chunk.subarray(off, off + n), this.headLen);
      const had = this.headLen;
      this.headLen += n;
      off += n;
      if (had < SIZE_OF_LENGTH && this.headLen >= SIZE_OF_LENGTH) {
        // As soon as the Length is in: a frame too short to hold a ConnID
        // may be the last thing sent, and waiting for its header would hang.
        this.check(readU32(this.head, 0));
      }
      if (this.headLen < HEADER_SIZE) {
        return;
      }
      this.headLen = 0;
      const length = readU32(this.head, 0);
      this.check(length);
      const connID = readU32(this.head, SIZE_OF_LENGTH);
      if (length === SIZE_OF_CONN_ID) {
        this.emit(connID, new Uint8Array(0), true, sink);
        continue;
      }
      this.startBody(length, connID, this.head.subarray(SIZE_OF_LENGTH));
    }
  }

  /** Checks a Length before anything is allocated for it. */
  private check(length: number): void {
    if (length < SIZE_OF_CONN_ID) {
      throw new ProtocolError(`frame Length ${length} < ${SIZE_OF_CONN_ID}`);
    }
    if (length > this.maxPacket) {
      throw new ProtocolError(`frame Length ${length} > MaxPacket ${this.maxPacket}`);
    }
  }

  /** Starts a partial frame of Length length whose first bytes are got. */
  private startBody(length: number, connID: number, got: Uint8Array): void {
    this.body = new Uint8Array(length);
    this.body.set(got, 0);
    this.bodyLen = got.length;
    this.connID = connID;
  }

  /** Hands one frame to sink; owned says msg is a buffer of its own already. */
  private emit(connID: number, msg: Uint8Array, owned: boolean, sink: FrameSink): void {
    if (connID === 0) {
      sink.command(decodeCommand(msg));
      return;
    }
    sink.data(connID, owned ? msg : msg.slice());
  }
}

/** Reads a little-endian u32 at off. */
export function readU32(b: Uint8Array, off: number): number {
  return ((b[off] as number) | ((b[off + 1] as number) << 8) | ((b[off + 2] as number) << 16) | ((b[off + 3] as number) << 24)) >>> 0;
}
