# The `chainpay` gateway image. Builds offline against the committed .sqlx/
# query data, so no database is needed at build time.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release -p chainpay-gateway --bin chainpay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/chainpay --create-home chainpay
COPY --from=build /src/target/release/chainpay /usr/local/bin/chainpay
USER chainpay
WORKDIR /var/lib/chainpay
ENV CHAINPAY_ADDR=0.0.0.0:8443 CHAINPAY_LOG_FORMAT=json
EXPOSE 8443
ENTRYPOINT ["chainpay"]
CMD ["serve"]
