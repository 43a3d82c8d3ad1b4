# PostgreSQL for the notes-pg example, from Debian's postgresql-15 package on the same
# locally made base image as the platform (deploy/base-image.sh): no registry pull.
ARG BASE=barista-base:bookworm
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && install -d -o postgres -g postgres /var/lib/postgresql/data /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
CMD ["postgres-entrypoint"]
