package proto

import (
	"encoding/binary"
	"fmt"
)

// Cmd is the type byte of a command frame (ConnID 0). See docs/protocol.md §1.
type Cmd byte

const (
	// CmdDial asks the gateway to open a virtual connection to RemoteID.
	CmdDial Cmd = iota
	// CmdAccept tells the dialer its dial succeeded: ConnID, RemoteID.
	CmdAccept
	// CmdConnect tells the dialed side a peer opened ConnID to it: ConnID, RemoteID.
	CmdConnect
	// CmdRefuse tells the dialer its dial to RemoteID failed.
	CmdRefuse
	// CmdClose says virtual connection ConnID is closed.
	CmdClose
	// CmdPing is a keep-alive; the gateway answers each Ping with a Ping.
	CmdPing
)

// String returns the command's name as PROTOCOL.md spells it.
func (c Cmd) String() string {
	switch c {
	case CmdDial:
		return "Dial"
	case CmdAccept:
		return "Accept"
	case CmdConnect:
		return "Connect"
	case CmdRefuse:
		return "Refuse"
	case CmdClose:
		return "Close"
	case CmdPing:
		return "Ping"
	case CmdMulticast:
		return "Multicast"
	case CmdJoin:
		return "Join"
	case CmdLeave:
		return "Leave"
	case CmdPublish:
		return "Publish"
	}
	return fmt.Sprintf("Cmd(%d)", byte(c))
}

// Sizes of the wire format, built from named parts.
const (
	SizeOfLength = 4 // Length u32
	SizeOfConnID = 4 // ConnID u32
	SizeOfCmd    = 1 // command Type u8
	SizeOfID     = 4 // a RemoteID or ConnID argument

	// HeaderSize is the fixed prefix of every frame: Length + ConnID.
	HeaderSize = SizeOfLength + SizeOfConnID

	// CmdHeaderSize is the prefix of every command frame: header + Type.
	CmdHeaderSize = HeaderSize + SizeOfCmd

	// Frame sizes on the wire (including the Length field itself).
	DialSize    = CmdHeaderSize + SizeOfID   // 13 bytes, Length = 9
	AcceptSize  = CmdHeaderSize + 2*SizeOfID // 17 bytes, Length = 13
	ConnectSize = AcceptSize                 // 17 bytes, Length = 13
	RefuseSize  = CmdHeaderSize + SizeOfID   // 13 bytes, Length = 9
	CloseSize   = CmdHeaderSize + SizeOfID   // 13 bytes, Length = 9
	PingSize    = CmdHeaderSize              // 9 bytes, Length = 5
	MaxCmdSize  = AcceptSize                 // the largest command frame
	MinLength   = SizeOfConnID               // the smallest legal Length

	// DefaultMaxPacket bounds Length unless configured otherwise (512 KiB).
	DefaultMaxPacket = 512 << 10
)

// cmdSize is the exact frame size of each command, indexed by Cmd.
var cmdSize = [...]int{
	CmdDial:    DialSize,
	CmdAccept:  AcceptSize,
	CmdConnect: ConnectSize,
	CmdRefuse:  RefuseSize,
	CmdClose:   CloseSize,
	CmdPing:    PingSize,
}

// CmdSize returns the exact frame size (Length field included) of command c,
// or 0 for an unknown command.
func CmdSize(c Cmd) int {
	if int(c) < len(cmdSize) {
		return cmdSize[c]
	}
	return 0
}

// Header is a view of the first HeaderSize bytes of a frame.
type Header []byte

// Length returns the frame's Length field (bytes after the field itself).
func (h Header) Length() uint32 { return binary.LittleEndian.Uint32(h) }

// ConnID returns the frame's ConnID (0 for a command).
func (h Header) ConnID() uint32 { return binary.LittleEndian.Uint32(h[SizeOfLength:]) }

// PutHeader writes Length and ConnID for a frame whose total size (Length field
// included) is len(frame).
func PutHeader(frame []byte, connID uint32) {
	binary.LittleEndian.PutUint32(frame, uint32(len(frame)-SizeOfLength))
	binary.LittleEndian.PutUint32(frame[SizeOfLength:], connID)
}

// Command is a decoded command frame. Fields that a command does not carry
// are zero: Dial and Refuse carry RemoteID, Close carries ConnID, Accept and
// Connect carry both, Ping carries nothing.
type Command struct {
	Type     Cmd
	ConnID   uint32
	RemoteID uint32
}

// Encode appends the command's frame to dst and returns the extended slice.
// It panics on an unknown Type, a programming error.
func (c Command) Encode(dst []byte) []byte {
	n := CmdSize(c.Type)
	if n == 0 {
		panic("fastway: encode of unknown command " + c.Type.String())
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	c.Put(dst[start:])
	return dst
}

// Put writes the command's frame into frame, which must be exactly
// CmdSize(c.Type) bytes long.
func (c Command) Put(frame []byte) {
	PutHeader(frame, 0)
	frame[HeaderSize] = byte(c.Type)
	args := frame[CmdHeaderSize:]
	switch c.Type {
	case CmdDial, CmdRefuse:
		binary.LittleEndian.PutUint32(args, c.RemoteID)
	case CmdClose:
		binary.LittleEndian.PutUint32(args, c.ConnID)
	case CmdAccept, CmdConnect:
		binary.LittleEndian.PutUint32(args, c.ConnID)
		binary.LittleEndian.PutUint32(args[SizeOfID:], c.RemoteID)
	}
}

// DecodeCommand decodes a whole command frame (Length field included, ConnID
// 0). It checks that the Length field matches len(frame) and that the size is
// exactly right for the Type; any mismatch is ErrBadCommand or ErrUnknownCmd.
func DecodeCommand(frame []byte) (Command, error) {
	if len(frame) < HeaderSize || int(Header(frame).Length()) != len(frame)-SizeOfLength {
		return Command{}, fmt.Errorf("%w: frame of %d bytes", ErrBadLength, len(frame))
	}
	if id := Header(frame).ConnID(); id != 0 {
		return Command{}, fmt.Errorf("%w: ConnID %d is not a command", ErrBadCommand, id)
	}
	if len(frame) < CmdHeaderSize {
		return Command{}, fmt.Errorf("%w: no type byte", ErrBadCommand)
	}
	c := Command{Type: Cmd(frame[HeaderSize])}
	want := CmdSize(c.Type)
	if want == 0 {
		return Command{}, fmt.Errorf("%w: type %d", ErrUnknownCmd, byte(c.Type))
	}
	if len(frame) != want {
		return Command{}, fmt.Errorf("%w: %s frame of %d bytes, want %d", ErrBadCommand, c.Type, len(frame), want)
	}
	args := frame[CmdHeaderSize:]
	switch c.Type {
	case CmdDial, CmdRefuse:
		c.RemoteID = binary.LittleEndian.Uint32(args)
	case CmdClose:
		c.ConnID = binary.LittleEndian.Uint32(args)
	case CmdAccept, CmdConnect:
		c.ConnID = binary.LittleEndian.Uint32(args)
		c.RemoteID = binary.LittleEndian.Uint32(args[SizeOfID:])
	}
	return c, nil
}

// EncodeData appends a data frame for connID carrying msg to dst.
func EncodeData(dst []byte, connID uint32, msg []byte) []byte {
	var h [HeaderSize]byte
	binary.LittleEndian.PutUint32(h[:], uint32(SizeOfConnID+len(msg)))
	binary.LittleEndian.PutUint32(h[SizeOfLength:], connID)
	dst = append(dst, h[:]...)
	return append(dst, msg...)
}

// CheckLength validates a Length field against the protocol minimum and
// maxPacket (0 means DefaultMaxPacket).
func CheckLength(length uint32, maxPacket int) error {
	if maxPacket <= 0 {
		maxPacket = DefaultMaxPacket
	}
	if length < MinLength {
		return fmt.Errorf("%w: Length %d < %d", ErrShortFrame, length, MinLength)
	}
	if uint64(length) > uint64(maxPacket) {
		return fmt.Errorf("%w: Length %d > MaxPacket %d", ErrFrameTooLarge, length, maxPacket)
	}
	return nil
}
