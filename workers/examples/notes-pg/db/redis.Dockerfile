# Redis for the notes-pg example, from Debian's redis-server package on the same locally
# made base image as the platform: no registry pull.  A password is required
# (REDIS_PASSWORD); nothing is persisted (a cache).
ARG BASE=barista-base:bookworm
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER redis
EXPOSE 6379
CMD ["sh", "-c", ": \"${REDIS_PASSWORD:?}\"; exec redis-server --bind 0.0.0.0 --protected-mode no --save '' --appendonly no --requirepass \"$REDIS_PASSWORD\""]
