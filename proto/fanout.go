package proto

import (
	"encoding/binary"
	"fmt"
)

// Fan-out commands (docs/protocol.md §7, ../shared/PROTOCOL.md §5): sent
// by a server to the gateway on ConnID 0, after the handshake. A client
// sending one commits a protocol error. They are not fixed-size commands:
// CmdSize reports 0 for them and DecodeCommand rejects them; DecodeFanout
// decodes them.
const (
	// CmdMulticast delivers its payload on each listed virtual connection:
	// Count u16, ConnID u32 × Count, Payload.
	CmdMulticast Cmd = iota + CmdPing + 1
	// CmdJoin adds virtual connection ConnID to group GroupID: GroupID
	// u32, ConnID u32.
	CmdJoin
	// CmdLeave removes ConnID from group GroupID (ConnID 0: every member,
	// and the group ends): GroupID u32, ConnID u32.
	CmdLeave
	// CmdPublish delivers its payload to every member of group GroupID
	// but ExceptConnID (0: none); GroupID 0 is every virtual connection of
	// the sending server link: GroupID u32, ExceptConnID u32, Payload.
	CmdPublish
)

// Sizes of the fan-out commands, built from named parts.
const (
	SizeOfCount   = 2 // Multicast's Count u16
	SizeOfGroupID = 4 // a GroupID argument

	// MulticastHeaderSize is a Multicast frame before its ConnIDs: Length
	// = 7 + 4·Count + len(Payload).
	MulticastHeaderSize = CmdHeaderSize + SizeOfCount // 11 bytes
	// GroupCmdSize is a Join or Leave frame: Length = 13.
	GroupCmdSize = CmdHeaderSize + SizeOfGroupID + SizeOfConnID // 17 bytes
	// PublishHeaderSize is a Publish frame before its payload: Length =
	// 13 + len(Payload).
	PublishHeaderSize = CmdHeaderSize + SizeOfGroupID + SizeOfConnID // 17 bytes

	// MaxMulticastCount is the most ConnIDs one Multicast lists.
	MaxMulticastCount = 1<<16 - 1
)

// IsFanout reports whether c is one of the fan-out commands (6-9).
func IsFanout(c Cmd) bool { return c >= CmdMulticast && c <= CmdPublish }

// FanoutType returns the type of a command frame (ConnID 0) when it is a
// fan-out command, and whether it is. It looks at the type byte only.
func FanoutType(frame []byte) (Cmd, bool) {
	if len(frame) < CmdHeaderSize || Header(frame).ConnID() != 0 {
		return 0, false
	}
	c := Cmd(frame[HeaderSize])
	return c, IsFanout(c)
}

// Fanout is a decoded fan-out command. Its slices are views of the frame it
// was decoded from.
type Fanout struct {
	Type Cmd
	// GroupID is Join's, Leave's and Publish's group (0 for Multicast).
	GroupID uint32
	// ConnID is Join's and Leave's member, and Publish's ExceptConnID
	// (0 for Multicast).
	ConnID uint32
	// IDs holds Multicast's ConnIDs, 4 little-endian bytes each (see
	// Count and ID).
	IDs []byte
	// Payload is what Multicast and Publish deliver.
	Payload []byte
}

// Count returns how many ConnIDs a Multicast lists.
func (f Fanout) Count() int { return len(f.IDs) / SizeOfConnID }

// ID returns a Multicast's i-th ConnID.
func (f Fanout) ID(i int) uint32 { return binary.LittleEndian.Uint32(f.IDs[i*SizeOfConnID:]) }

// DecodeFanout decodes a whole fan-out command frame (Length field
// included, ConnID 0). A frame whose Length field does not match its size is
// ErrBadLength; a Multicast with Count 0 or too short for its Count, a
// Join or Leave of any Length but 13, a Publish shorter than 13, or a
// frame of another type, is ErrBadCommand.
func DecodeFanout(frame []byte) (Fanout, error) {
	if len(frame) < HeaderSize || int(Header(frame).Length()) != len(frame)-SizeOfLength {
		return Fanout{}, fmt.Errorf("%w: frame of %d bytes", ErrBadLength, len(frame))
	}
	c, ok := FanoutType(frame)
	if !ok {
		return Fanout{}, fmt.Errorf("%w: not a fan-out command", ErrBadCommand)
	}
	args := frame[CmdHeaderSize:]
	f := Fanout{Type: c}
	switch c {
	case CmdMulticast:
		if len(args) < SizeOfCount {
			return Fanout{}, fmt.Errorf("%w: Multicast of %d bytes has no Count", ErrBadCommand, len(frame))
		}
		n := int(binary.LittleEndian.Uint16(args))
		if n == 0 {
			return Fanout{}, fmt.Errorf("%w: Multicast with Count 0", ErrBadCommand)
		}
		args = args[SizeOfCount:]
		if len(args) < n*SizeOfConnID {
			return Fanout{}, fmt.Errorf("%w: Multicast of %d bytes is too short for Count %d", ErrBadCommand, len(frame), n)
		}
		f.IDs, f.Payload = args[:n*SizeOfConnID:n*SizeOfConnID], args[n*SizeOfConnID:]
	case CmdJoin, CmdLeave:
		if len(frame) != GroupCmdSize {
			return Fanout{}, fmt.Errorf("%w: %s frame of %d bytes, want %d", ErrBadCommand, c, len(frame), GroupCmdSize)
		}
		f.GroupID = binary.LittleEndian.Uint32(args)
		f.ConnID = binary.LittleEndian.Uint32(args[SizeOfGroupID:])
	case CmdPublish:
		if len(frame) < PublishHeaderSize {
			return Fanout{}, fmt.Errorf("%w: Publish frame of %d bytes, want at least %d", ErrBadCommand, len(frame), PublishHeaderSize)
		}
		f.GroupID = binary.LittleEndian.Uint32(args)
		f.ConnID = binary.LittleEndian.Uint32(args[SizeOfGroupID:])
		f.Payload = args[SizeOfGroupID+SizeOfConnID:]
	}
	return f, nil
}

// Append appends the command's frame to dst and returns the extended
// slice. It panics on a Type that is not a fan-out command, a Multicast
// with no ConnID or more than MaxMulticastCount, or IDs not a multiple of
// 4 bytes: programming errors. The frame may exceed a MaxPacket; callers
// check (see MulticastSize, PublishSize).
func (f Fanout) Append(dst []byte) []byte {
	le := binary.LittleEndian
	switch f.Type {
	case CmdMulticast:
		n := f.Count()
		if n == 0 || n > MaxMulticastCount || len(f.IDs)%SizeOfConnID != 0 {
			panic(fmt.Sprintf("fastway: Multicast of %d bytes of ConnIDs", len(f.IDs)))
		}
		dst = le.AppendUint32(dst, uint32(MulticastSize(n, len(f.Payload))-SizeOfLength))
		dst = le.AppendUint32(dst, 0)
		dst = append(dst, byte(CmdMulticast))
		dst = le.AppendUint16(dst, uint16(n))
		dst = append(dst, f.IDs...)
		return append(dst, f.Payload...)
	case CmdJoin, CmdLeave:
		dst = le.AppendUint32(dst, GroupCmdSize-SizeOfLength)
		dst = le.AppendUint32(dst, 0)
		dst = append(dst, byte(f.Type))
		dst = le.AppendUint32(dst, f.GroupID)
		return le.AppendUint32(dst, f.ConnID)
	case CmdPublish:
		dst = le.AppendUint32(dst, uint32(PublishSize(len(f.Payload))-SizeOfLength))
		dst = le.AppendUint32(dst, 0)
		dst = append(dst, byte(CmdPublish))
		dst = le.AppendUint32(dst, f.GroupID)
		dst = le.AppendUint32(dst, f.ConnID)
		return append(dst, f.Payload...)
	}
	panic("fastway: Append of " + f.Type.String() + ", not a fan-out command")
}

// AppendMulticast appends a Multicast of payload to ids to dst.
func AppendMulticast(dst, payload []byte, ids ...uint32) []byte {
	b := make([]byte, 0, len(ids)*SizeOfConnID)
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return Fanout{Type: CmdMulticast, IDs: b, Payload: payload}.Append(dst)
}

// MulticastSize is the size of a Multicast frame (Length field included)
// listing count ConnIDs with a payload of n bytes.
func MulticastSize(count, n int) int { return MulticastHeaderSize + count*SizeOfConnID + n }

// PublishSize is the size of a Publish frame (Length field included) with
// a payload of n bytes.
func PublishSize(n int) int { return PublishHeaderSize + n }

// DeliverySize is the size of the data frame (Length field included) each
// member receives for a payload of n bytes.
func DeliverySize(n int) int { return HeaderSize + n }
