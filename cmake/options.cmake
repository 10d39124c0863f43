# Warnings and sanitizers as INTERFACE targets, linked only into our own targets.
option(FACEQ_WERROR "Treat warnings in faceq's own code as errors (tools/test.sh and CI build with it)" OFF)

add_library(faceq_warnings INTERFACE)
target_compile_options(faceq_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(FACEQ_WERROR)
  target_compile_options(faceq_warnings INTERFACE -Werror)
endif()

add_library(faceq_sanitizers INTERFACE)
if(FACEQ_SANITIZE)
  target_compile_options(faceq_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    # GCC 12 warns falsely in libstdc++'s <regex> under -fsanitize=address
    # (GCC bug 105616): the Release build keeps this warning.
    -Wno-maybe-uninitialized
    # Optimisation of this build, whatever CMAKE_BUILD_TYPE says (these come
    # after its flags, so they win): the core -O1, where the pixel loops run;
    # the CLI and the tests, thin code around it, -O0; line tables only
    # (-g1) for the reports' stack traces. Compiling test_cli_analyze.cpp took
    # 108 s at -O2 -g and 18 s at -O0; the whole build went from 23.5 min to 9
    # on 2 cores, which is what lets CI run it (2026-11-30).
    $<IF:$<STREQUAL:$<TARGET_PROPERTY:NAME>,faceq_core>,-O1,-O0> -g1)
  target_link_options(faceq_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
