//go:build !unix

package gateway

// fdLimit is 0 off unix: no descriptor limit is known, so the default
// ClientMaxConns is unlimited.
func fdLimit() int { return 0 }
