module github.com/fastway-go/fastway

go 1.26

require (
	github.com/google/pprof v0.0.0-20260906184651-6331bc6350fe
	github.com/libp2p/go-reuseport v0.4.0
	go.uber.org/goleak v1.3.0
)

require golang.org/x/sys v0.32.0 // indirect
