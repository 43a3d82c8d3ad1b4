# The one place that sets the warning set, the language level and the sanitizer
# options for every Barista target.  Every target calls barista_target_defaults().

option(BARISTA_WERROR "Treat warnings as errors" ON)
option(BARISTA_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_C_EXTENSIONS OFF)

# -Wnull-dereference is left out: at -O2 it fires on cmocka assertions it cannot see
# through, so release and debug builds would disagree under -Werror.
set(BARISTA_WARNINGS
    -Wall -Wextra
    -Wshadow -Wpointer-arith -Wcast-align -Wwrite-strings
    -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition
    -Wformat=2 -Wundef -Wvla
    -Wno-unused-parameter)
# GCC's -Wcast-align warns only where the target needs alignment (not x86-64, not
# aarch64); clang's warns everywhere, including on the container-of casts
# ((T *)((char *)member - offsetof(T, member))) the workers use.  Match GCC, so the
# clang build of the fuzz targets (tests/fuzz/run_ci.sh) compiles what GCC compiles.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  list(APPEND BARISTA_WARNINGS -Wno-cast-align)
endif()
if(BARISTA_WERROR)
  list(APPEND BARISTA_WARNINGS -Werror)
endif()

if(BARISTA_SANITIZE)
  set(BARISTA_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                             -fno-omit-frame-pointer)
  add_compile_options(${BARISTA_SANITIZE_FLAGS})
  add_link_options(${BARISTA_SANITIZE_FLAGS})
endif()

# BARISTA_FUZZ: instrument every target for libFuzzer's coverage feedback (clang only),
# with ASan and UBSan, so that fuzz targets explore the library's branches too.
option(BARISTA_FUZZ "Instrument for libFuzzer (requires clang)" OFF)
if(BARISTA_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "BARISTA_FUZZ=ON needs clang: CC=clang cmake ...")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# POSIX.1-2008 for clock_gettime, strndup and friends under -std=c11.
add_compile_definitions(_POSIX_C_SOURCE=200809L)

function(barista_target_defaults target)
  target_compile_options(${target} PRIVATE ${BARISTA_WARNINGS})
endfunction()
