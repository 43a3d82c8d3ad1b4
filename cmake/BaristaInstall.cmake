# What `cmake --install` puts under the prefix:
#
#   bin/                      barista-gateway, barista-worker, barista-keygen
#   include/barista/          the SDK's public headers
#   lib/                      libbarista-worker.so.N (and .so), libbarista-worker.a,
#                             libbarista-testing (the same two ways)
#   lib/pkgconfig/            barista-worker.pc, barista-testing.pc
#   lib/cmake/Barista/        find_package(Barista): Barista::worker (shared),
#                             Barista::worker_static, Barista::testing(_static)
#
# Installed artifacts never carry sanitizer instrumentation: a library built with
# BARISTA_SANITIZE would need the sanitizer runtime in every program that links it,
# so installing from such a build tree is refused.  Build the SDK in a tree of its
# own (tests/sdk/sdk_test.sh does exactly that).

include(CMakePackageConfigHelpers)

if(BARISTA_SANITIZE OR BARISTA_FUZZ)
  install(CODE "message(FATAL_ERROR \"barista: this build tree is instrumented \
(BARISTA_SANITIZE/BARISTA_FUZZ); install from a tree configured without them\")")
endif()

set(BARISTA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Barista)

install(TARGETS barista-gateway barista-worker barista-keygen
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(TARGETS barista_worker_shared barista_worker barista_testing_shared barista_testing
        EXPORT BaristaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(FILES
          ${PROJECT_SOURCE_DIR}/proto/include/barista/types.h
          ${PROJECT_SOURCE_DIR}/proto/include/barista/schema.h
          ${PROJECT_SOURCE_DIR}/proto/include/barista/mpread.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/value.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/writer.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/worker.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/async.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/stream.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/multipart.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/pg.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/redis.h
          ${PROJECT_SOURCE_DIR}/workers/include/barista/testing.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/barista)

install(EXPORT BaristaTargets NAMESPACE Barista:: DESTINATION ${BARISTA_CMAKE_DIR})

set(BARISTA_DEV_PACKAGES "pkg-config libuv1-dev libzmq3-dev libczmq-dev libmsgpack-dev")
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/BaristaConfig.cmake.in
  ${CMAKE_BINARY_DIR}/BaristaConfig.cmake
  INSTALL_DESTINATION ${BARISTA_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/BaristaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/BaristaConfig.cmake ${CMAKE_BINARY_DIR}/BaristaConfigVersion.cmake
        DESTINATION ${BARISTA_CMAKE_DIR})

# The .pc file finds the prefix from its own place: relocatable.
file(RELATIVE_PATH BARISTA_PC_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
# dlopen's library, where it is not libc itself (-ldl), for the static archive's users.
set(BARISTA_PC_DL "")
foreach(lib ${CMAKE_DL_LIBS})
  string(APPEND BARISTA_PC_DL "-l${lib}")
endforeach()
foreach(pc barista-worker barista-testing)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${CMAKE_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
