# audex's programs in one small image: `api` (the default command),
# `worker` and `audexctl`. Build with `docker build -t audex .`; see
# docker-compose.yml for a whole deployment.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/bin/ ./cmd/api ./cmd/worker ./cmd/audexctl \
 && mkdir -p /out/data/exports

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The built-in "local" destination writes under ./data/exports.
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/audex/data
WORKDIR /var/lib/audex
USER nonroot
# In a container the API listens on every interface of the container;
# publish it on the host's loopback (docker-compose.yml does).
ENV AUDEX_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["api"]
