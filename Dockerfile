# cartograph: one image with the collector, the UI and the load generator.
#
#   docker build -t cartograph .
#   docker run --rm cartograph -version
#
# Stage 1 builds static binaries (CGO_ENABLED=0) of every command under
# ./cmd; stage 2 is Alpine with a non-root user (alpine rather than
# distroless/static so that compose health checks can run busybox wget).
# The build context keeps .git (see .dockerignore) so that Go stamps the VCS
# revision and time that -version prints.

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=alpine:3.22

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && \
    git config --global --add safe.directory /src && \
    go build -trimpath -buildvcs=auto -ldflags='-s -w' -o /out/ ./cmd/... && \
    /out/collector -version

FROM ${RUNTIME_IMAGE}
RUN addgroup -S -g 10001 cartograph && \
    adduser -S -D -H -u 10001 -G cartograph -h /data cartograph && \
    mkdir -p /data && chown cartograph:cartograph /data
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /data
VOLUME /data
# OTLP gRPC, OTLP HTTP, API + /metrics, UI
EXPOSE 4317 4318 8070 8080
ENTRYPOINT ["/usr/local/bin/collector"]
# Inside a container the listeners must reach beyond loopback; the collector
# warns that nothing authenticates them: publish the ports with care.
CMD ["--otlp-grpc-addr=0.0.0.0:4317", "--otlp-http-addr=0.0.0.0:4318", "--api-addr=0.0.0.0:8070", "--data-dir=/data"]
