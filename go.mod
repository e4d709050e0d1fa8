module github.com/fastway-go/fastway

go 1.26
