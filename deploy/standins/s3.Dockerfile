# syntax=docker/dockerfile:1
# Stand-in for minio/minio and minio/mc where no registry can be reached: moto's S3 server
# (the one the tests use) behind two small commands with MinIO's names, so docker-compose.yml's
# `server /data`, `mc ready local`, `mc alias set` and `mc mb` run unchanged. moto keeps the
# objects in memory: they live as long as this container (the /data volume stays empty).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tweetdomains-standin-s3"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv \
    && pip install 'moto[server]>=5,<6' 'boto3>=1.34' \
    && pip uninstall -y -q pip \
    && useradd --system --uid 10009 --home-dir /tmp minio
COPY minio mc /usr/local/bin/
USER 10009
EXPOSE 9000
ENTRYPOINT ["minio"]
CMD ["server", "/data"]
