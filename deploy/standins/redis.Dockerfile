# syntax=docker/dockerfile:1
# Stand-in for redis:7.4-alpine where no registry can be reached: Debian's redis-server and
# redis-cli, so docker-compose.yml's command and healthcheck run unchanged. Like the official
# image, it leaves protected mode off (redis-server, first on PATH, adds the flag).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tweetdomains-standin-redis"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
COPY redis-server /usr/local/bin/redis-server
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
HEALTHCHECK CMD ["redis-cli", "ping"]
CMD ["redis-server"]
