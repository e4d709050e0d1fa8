module github.com/fastway-go/fastway/bench/wscompare

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/fastway-go/fastway v0.0.0
	github.com/gorilla/websocket v1.5.3
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0 // indirect
)

replace github.com/fastway-go/fastway => ../..
