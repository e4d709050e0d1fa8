# fastway gateway image (docs/operations.md, "Docker").
#
#   docker build -t fastway .
#   docker run -d --name fastway -p 4000:4000 -p 4001:4001 \
#       -e FASTWAY_AUTH_PASSWORD=change-me fastway
#   docker exec fastway sh -c 'echo "lookup heap" > fastway.cmd && kill -USR1 1'
#   docker logs fastway; docker cp fastway:/var/lib/fastway/fastway.heap.prof .
#
# The server port is open to other hosts, so fastway refuses to start
# without a password: pass -e FASTWAY_AUTH_PASSWORD (read by fastway
# itself, so it does not show in ps), or mount a secret and append
# -ServerAuthPasswordFile=/run/secrets/... (or -ServerKeyFile=... for keys
# per server) to the command. Arguments after the image name replace CMD,
# so repeat the addresses when you add flags. The admin server, if any,
# must listen on -AdminAddr=0.0.0.0:6060 to be reachable through -p (a
# host-less address binds the container's loopback).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/fastway ./cmd/fastway

# alpine rather than distroless: operators need a shell and kill inside the
# container to drive the command file with docker exec.
FROM alpine:3.22
RUN addgroup -S -g 10001 fastway \
 && adduser -S -D -H -u 10001 -G fastway -h /var/lib/fastway fastway \
 && mkdir -p /var/lib/fastway \
 && chown fastway:fastway /var/lib/fastway
COPY --from=build /out/fastway /usr/local/bin/fastway
USER fastway
# Holds fastway.pid, fastway.cmd and the profiles the commands write.
WORKDIR /var/lib/fastway
EXPOSE 4000 4001
# fastway is PID 1: it handles SIGTERM (docker stop) and SIGUSR1 itself.
# docker stop's default 10 s grace equals fastway's -ShutdownTimeout
# default; use docker stop -t 15 (or a shorter -ShutdownTimeout) to let a
# full graceful shutdown finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/fastway"]
CMD ["-ClientAddr=:4000", "-ServerAddr=:4001"]
