# Multi-stage build of workbench-scheduler. This repository's CI machine has no Docker engine,
# so this file is not built in CI; build it wherever `docker build` works.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=v0.1.0
RUN CGO_ENABLED=0 make build VERSION=${VERSION}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/workbench-scheduler /usr/local/bin/workbench-scheduler
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/workbench-scheduler"]
