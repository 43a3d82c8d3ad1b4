# Finds every dependency through pkg-config and, when one is missing, stops with the
# name of the Debian package that provides it.

find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

# barista_require(<prefix> <pkg-config module> <debian package>)
function(barista_require prefix module debpkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debpkg}")
  endif()
endfunction()

barista_require(UV libuv libuv1-dev)
barista_require(ZMQ libzmq libzmq3-dev)
barista_require(CZMQ libczmq libczmq-dev)
barista_require(MSGPACK msgpack libmsgpack-dev)

# llhttp: Debian's node-llhttp ships the C sources rather than a library; we compile
# them here, from where the package put them, into a static library.
set(BARISTA_LLHTTP_DIR /usr/share/llhttp CACHE PATH "Directory holding llhttp's C sources")
set(BARISTA_LLHTTP_INCLUDE /usr/share/include/llhttp CACHE PATH "Directory holding llhttp.h")
if(NOT EXISTS ${BARISTA_LLHTTP_DIR}/llhttp.c OR NOT EXISTS ${BARISTA_LLHTTP_INCLUDE}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${BARISTA_LLHTTP_DIR}: apt-get install node-llhttp")
endif()
add_library(llhttp STATIC
  ${BARISTA_LLHTTP_DIR}/api.c ${BARISTA_LLHTTP_DIR}/http.c ${BARISTA_LLHTTP_DIR}/llhttp.c)
target_include_directories(llhttp SYSTEM PUBLIC ${BARISTA_LLHTTP_INCLUDE})
set_target_properties(llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
# llhttp's strict build: refuses e.g. a space before a header's colon, which its
# default (loose) build accepts.  Runtime lenient flags stay off as well.
target_compile_definitions(llhttp PUBLIC LLHTTP_STRICT_MODE=1)

barista_require(JANSSON jansson libjansson-dev)
barista_require(SODIUM libsodium libsodium-dev)
barista_require(CURL libcurl libcurl4-openssl-dev)  # headers only: see below
barista_require(SQLITE sqlite3 libsqlite3-dev)

# The gateway's edge: JWT verification, compression both ways, JWK keys as PEM.
barista_require(JWT libjwt libjwt-dev)
barista_require(ZLIB zlib zlib1g-dev)
barista_require(BROTLIENC libbrotlienc libbrotli-dev)
barista_require(CRYPTO libcrypto libssl-dev)

# The database clients of I/O services (workers/src/pg*.c, redis*.c) and of the
# gateway's PostgreSQL stores.
barista_require(PQ libpq libpq-dev)
barista_require(HIREDIS hiredis libhiredis-dev)

# libpq, libcurl and hiredis are not linked into the binaries: proto/src/dl.c loads
# them with dlopen the first time they are used (barista/dl.h), so the build needs only
# their headers.  barista_headers_<lib> carries those; PkgConfig::<LIB> (headers and
# library) stays for tests that call a library themselves.
foreach(lib PQ CURL HIREDIS)
  string(TOLOWER ${lib} name)
  add_library(barista_headers_${name} INTERFACE)
  target_include_directories(barista_headers_${name} SYSTEM INTERFACE ${${lib}_INCLUDE_DIRS})
  target_compile_options(barista_headers_${name} INTERFACE ${${lib}_CFLAGS_OTHER})
endforeach()
