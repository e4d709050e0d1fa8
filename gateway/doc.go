// Package gateway routes fastway's virtual connections between clients and
// servers.
//
// Clients and servers both connect to the gateway; each physical connection
// is a link. A client dials a server by ID (or a server dials a client by the
// ID the gateway gave it) and the gateway assigns a ConnID that both ends
// then put on every data frame. The gateway forwards a data frame to the
// other end's send queue, whose writer flushes many frames in one writev:
// a large one as a slice of the read buffer it arrived in, a small one
// copied into the queue's own buffer with others. See docs/architecture.md.
package gateway
